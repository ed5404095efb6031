"""DPO: the policy and a frozen reference from the same parameters, the reference's
log-probabilities precomputed once; held-out implicit-reward accuracy and margin."""

import logging

from llm.align.objective import StageInputs, trained_params
from llm.align.preference_losses import LOSS_TYPES
from llm.align.preference_tasks import DPOTask, preference_metrics, with_reference_logprobs
from llm.align.reward_model import preference_rows
from llm.config import fail
from llm.train.loop import train


def check_dpo_config(config) -> None:
  align = config.align
  if align.dpo_loss not in LOSS_TYPES or align.dpo_beta <= 0:
    fail("align.dpo_loss", f"loss {align.dpo_loss!r} with beta {align.dpo_beta}",
         f"Use one of {LOSS_TYPES}, with beta > 0 (default 0.1).")


def build_dpo_task(config, inputs: StageInputs, rows: dict | None = None) -> DPOTask:
  """The DPO Task on `rows` (default: the train preference pairs) with the reference's
  log-probabilities added."""
  rows = preference_rows(config, inputs)[0] if rows is None else rows
  plain = DPOTask(config, rows, init_params=inputs.init_params)
  rows = with_reference_logprobs(plain, inputs.init_params, rows, config.train.batch_size)
  return DPOTask(config, rows, init_params=inputs.init_params)


def run_dpo(config, inputs: StageInputs, workdir: str):
  """Returns (the policy's model parameters, report)."""
  batch = config.train.batch_size
  logging.info("DPO (beta %.2f)", config.align.dpo_beta)
  train_rows, heldout_rows = preference_rows(config, inputs)
  task = build_dpo_task(config, inputs, train_rows)
  heldout_rows = with_reference_logprobs(task, inputs.init_params, heldout_rows, batch)
  before = preference_metrics(task, {"model": inputs.init_params}, heldout_rows, batch)
  params = trained_params(train(config, task, workdir))
  return params["model"], {
      "steps": config.train.steps, "beta": config.align.dpo_beta,
      "loss": config.align.dpo_loss, "pairs": int(len(task.train_rows["chosen_inputs"])),
      "heldout_before": before,
      "heldout_after": preference_metrics(task, params, heldout_rows, batch)}

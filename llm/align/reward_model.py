"""The reward model: the decoder backbone plus a scalar head, Bradley-Terry on preference
pairs (data card in `preferences.py`); held-out and train pair accuracy."""

import logging

from llm.align.objective import StageInputs, trained_params
from llm.align.preference_tasks import RewardTask, preference_metrics
from llm.align.preferences import pair_rows, preference_pairs
from llm.train.loop import train


def preference_rows(config, inputs: StageInputs) -> tuple[dict, dict]:
  """(train, held-out) pair rows from the conversations' preference pairs."""
  train_conversations, heldout_conversations = inputs.conversations
  seq = config.data.seq_len
  return (pair_rows(inputs.tokenizer, preference_pairs(train_conversations, seed=0), seq),
          pair_rows(inputs.tokenizer, preference_pairs(heldout_conversations, seed=1), seq))


def build_reward_model_task(config, inputs: StageInputs) -> RewardTask:
  return RewardTask(config, preference_rows(config, inputs)[0], init_params=inputs.init_params)


def run_reward_model(config, inputs: StageInputs, workdir: str):
  """Returns ({"model", "head"}, report)."""
  batch = config.train.batch_size
  train_rows, heldout_rows = preference_rows(config, inputs)
  logging.info("reward model on %d pairs", len(train_rows["chosen_inputs"]))
  task = RewardTask(config, train_rows, init_params=inputs.init_params)
  params = trained_params(train(config, task, workdir))
  return params, {"steps": config.train.steps,
                  "pairs": {"train": int(len(train_rows["chosen_inputs"])),
                            "heldout": int(len(heldout_rows["chosen_inputs"]))},
                  "heldout": preference_metrics(task, params, heldout_rows, batch),
                  "train": preference_metrics(task, params, train_rows, batch)}

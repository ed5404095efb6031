"""PPO / GRPO as an objective (`train.task=ppo`, `align.rl_algo` ppo or grpo): rollouts on
train prompts scored by the reward model with a KL penalty to the reference; held-out prompts'
mean score and KL before and after; rollouts.json and ppo_curves.png in the workdir."""

import json
import logging
import os

import numpy as np

from llm.align.chat_data import fixed_length_prompts
from llm.align.conversations import first_user_messages
from llm.align.objective import StageInputs, trained_params
from llm.align.plots import plot_rollouts
from llm.align.ppo import ALGORITHMS, PPOSettings, PPOTask
from llm.config import fail
from llm.io import write_json_atomic
from llm.tokenizer.base import IM_END
from llm.train.loop import train


def check_rl_config(config) -> None:
  align = config.align
  if align.rl_algo not in ALGORITHMS:
    fail("align.rl_algo", f"unknown algorithm {align.rl_algo!r}", f"Use one of {ALGORITHMS}.")
  if align.rl_algo == "grpo" and align.group_size < 2:
    fail("align.group_size", f"GRPO compares samples of one prompt, got group_size "
         f"{align.group_size}", "Use group_size >= 2 (e.g. 4).")
  samples = align.rollout_prompts * align.group_size
  if samples % align.rl_minibatches:
    fail("align.rl_minibatches", f"{align.rollout_prompts} prompts x {align.group_size} "
         f"samples do not split into {align.rl_minibatches} minibatches",
         "Make the product divisible.")
  minibatch = samples // align.rl_minibatches
  if minibatch != config.train.batch_size:
    fail("train.batch_size", f"PPO trains on minibatches of the rollout: "
         f"{align.rollout_prompts} prompts x {align.group_size} / {align.rl_minibatches} = "
         f"{minibatch} sequences, but train.batch_size is {config.train.batch_size}",
         f"Set train.batch_size={minibatch}.")


def rl_prompts(config, inputs: StageInputs) -> tuple[np.ndarray, np.ndarray]:
  """(train, held-out) prompts: first user turns in the chat template, align.prompt_tokens
  long."""
  align = config.align
  train_conversations, heldout_conversations = inputs.conversations
  prompts, heldout = (fixed_length_prompts(inputs.tokenizer, first_user_messages(c),
                                           align.prompt_tokens)
                      for c in (train_conversations, heldout_conversations))
  if len(prompts) < align.rollout_prompts or not len(heldout):
    raise ValueError(f"{len(prompts)} train and {len(heldout)} held-out prompts fill "
                     f"{align.prompt_tokens} tokens; need {align.rollout_prompts} and some "
                     "held out: lower align.prompt_tokens or raise align.conversations")
  return prompts, heldout


def build_rl_task(config, inputs: StageInputs, prompts: np.ndarray | None = None) -> PPOTask:
  prompts = rl_prompts(config, inputs)[0] if prompts is None else prompts
  return PPOTask(config, PPOSettings.from_config(config.align), prompts, inputs.init_params,
                 inputs.trained["reward_model"],
                 stop_id=inputs.tokenizer.special_id(IM_END))


def run_rl(config, inputs: StageInputs, workdir: str):
  """Returns (the policy's model parameters, report)."""
  align = config.align
  prompts, heldout = rl_prompts(config, inputs)
  logging.info("%s on %d prompts of %d tokens (%d held out), KL coefficient %.3g",
               align.rl_algo.upper(), len(prompts), align.prompt_tokens, len(heldout),
               align.kl_coef)
  task = build_rl_task(config, inputs, prompts)
  before = task.evaluate(inputs.init_params, heldout)
  params = trained_params(train(config, task, workdir))
  after = task.evaluate(params, heldout)
  history = _rollout_history(task.history, os.path.join(workdir, "rollouts.json"))
  kls = [h["kl"] for h in history]
  plot = plot_rollouts(history, os.path.join(workdir, "ppo_curves.png"), max_kl=align.max_kl,
                       kl_target=align.kl_target,
                       title=f"{align.rl_algo.upper()} on {config.name}")
  report = {"algo": align.rl_algo, "steps": config.train.steps, "rollouts": len(history),
            "prompts": {"train": int(len(prompts)), "heldout": int(len(heldout))},
            "heldout_before": before, "heldout_after": after,
            "rollout_score_first5": _mean([h["score"] for h in history[:5]]),
            "rollout_score_last5": _mean([h["score"] for h in history[-5:]]),
            "rollout_kl_max": max(kls) if kls else None, "max_kl": align.max_kl,
            "kl_within_bound": bool(align.max_kl <= 0 or (kls and max(kls) < align.max_kl)),
            "curves": plot}
  if align.max_kl > 0 and not report["kl_within_bound"]:
    logging.warning("the KL to the reference reached %.3f, over the bound align.max_kl=%g: "
                    "raise align.kl_coef or set align.kl_target", max(kls), align.max_kl)
  return params["model"], report


def _mean(values):
  return float(np.mean(values)) if values else None


def _rollout_history(history: list, path: str) -> list:
  """This run's rollouts, written to `path`; a run that resumed finished has none of its own,
  so the saved ones are read back."""
  if history or not os.path.exists(path):
    write_json_atomic(path, history)
    return history
  with open(path, encoding="utf-8") as f:
    return json.load(f)

"""One alignment stage on the one loop, with its held-out measurements before and after.

Each function trains its Task from given parameters in its own workdir and returns (the
resulting parameters, a report). The data all come from packaged ShareGPT conversations, split
into train and held-out by a hash of their id (`split_conversations`), as documents are.
- chat SFT: conversations in the chat template, packed whole, loss on every assistant turn,
  read in curriculum order; held-out assistant-token loss.
- reward model: the backbone plus a scalar head, Bradley-Terry on preference pairs (data card
  in `preferences.py`); held-out pair accuracy.
- DPO: policy and frozen reference from the same parameters, the reference's log-probabilities
  precomputed once; held-out implicit-reward accuracy and margin.
- PPO / GRPO: rollouts on train prompts scored by the reward model with a KL penalty to the
  reference; held-out prompts' mean score and KL; curves in ppo_curves.png.
"""

import itertools
import json
import logging
import os

import jax
import numpy as np

from llm.align.chat_data import chat_rows, fixed_length_prompts
from llm.align.plots import plot_rollouts
from llm.align.ppo import PPOSettings, PPOTask
from llm.align.preference_tasks import (DPOTask, RewardTask, preference_metrics,
                                        with_reference_logprobs)
from llm.align.preferences import pair_rows, preference_pairs
from llm.data.curation.heldout import is_heldout
from llm.data.curation.packaged import sharegpt_conversations
from llm.eval.perplexity import model_perplexity
from llm.tokenizer.base import IM_END
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.partition import merge

HELDOUT_FRACTION = 0.1


def split_conversations(count: int) -> tuple[list, list]:
  """(train, held-out) among the first `count` packaged conversations with turns."""
  conversations = [c for c in itertools.islice(sharegpt_conversations(), count) if c["turns"]]
  heldout = [is_heldout(c["id"], HELDOUT_FRACTION) for c in conversations]
  return ([c for c, h in zip(conversations, heldout) if not h],
          [c for c, h in zip(conversations, heldout) if h])


class ChatSFTTask(LMTask):
  """The LM objective on chat rows; rows are read in their curriculum order."""
  name = "chat_sft"
  shuffle = False


def _trained(result) -> dict:
  return merge(result["state"]["params"], result["frozen"])


def chat_sft(config, tokenizer, split, init_params: dict, workdir: str):
  seq, batch = config.data.seq_len, config.train.batch_size
  train_convs, heldout_convs = split
  logging.info("chat SFT on %d conversations (curriculum in %d stages)", len(train_convs),
               config.align.curriculum_stages)
  rows = chat_rows(tokenizer, [c["turns"] for c in train_convs], seq,
                   config.align.curriculum_stages)
  heldout = chat_rows(tokenizer, [c["turns"] for c in heldout_convs], seq)
  task = ChatSFTTask(config, rows, init_params=init_params)
  task.init(jax.random.PRNGKey(0))
  before = model_perplexity(task.model(init_params), heldout, batch)
  params = _trained(train(config, task, workdir))
  after = model_perplexity(task.model(params), heldout, batch)
  return params, {"rows": int(len(rows["inputs"])), "steps": config.train.steps,
                  "heldout_assistant_loss_before": before["loss"],
                  "heldout_assistant_loss_after": after["loss"]}


def _pairs(tokenizer, split, seq: int) -> tuple[dict, dict]:
  train_convs, heldout_convs = split
  return (pair_rows(tokenizer, preference_pairs(train_convs, seed=0), seq),
          pair_rows(tokenizer, preference_pairs(heldout_convs, seed=1), seq))


def reward_model(config, tokenizer, split, init_params: dict, workdir: str):
  """Returns ({"model", "head"}, report)."""
  batch = config.train.batch_size
  train_rows, heldout_rows = _pairs(tokenizer, split, config.data.seq_len)
  logging.info("reward model on %d pairs", len(train_rows["chosen_inputs"]))
  task = RewardTask(config, train_rows, init_params=init_params)
  params = _trained(train(config, task, workdir))
  return params, {"steps": config.train.steps,
                  "pairs": {"train": int(len(train_rows["chosen_inputs"])),
                            "heldout": int(len(heldout_rows["chosen_inputs"]))},
                  "heldout": preference_metrics(task, params, heldout_rows, batch),
                  "train": preference_metrics(task, params, train_rows, batch)}


def dpo(config, tokenizer, split, init_params: dict, workdir: str):
  """Returns (the policy's model parameters, report)."""
  batch = config.train.batch_size
  train_rows, heldout_rows = _pairs(tokenizer, split, config.data.seq_len)
  logging.info("DPO on %d pairs (beta %.2f)", len(train_rows["chosen_inputs"]),
               config.align.dpo_beta)
  task = DPOTask(config, train_rows, init_params=init_params)
  train_rows = with_reference_logprobs(task, init_params, train_rows, batch)
  heldout_rows = with_reference_logprobs(task, init_params, heldout_rows, batch)
  task = DPOTask(config, train_rows, init_params=init_params)
  before = preference_metrics(task, {"model": init_params}, heldout_rows, batch)
  params = _trained(train(config, task, workdir))
  return params["model"], {"steps": config.train.steps, "beta": config.align.dpo_beta,
                           "loss": config.align.dpo_loss, "heldout_before": before,
                           "heldout_after": preference_metrics(task, params, heldout_rows,
                                                               batch)}


def _first_user_messages(conversations) -> list[str]:
  return [next(t["content"] for t in c["turns"] if t["role"] == "user")
          for c in conversations if any(t["role"] == "user" for t in c["turns"])]


def rl(config, tokenizer, split, init_params: dict, reward_params: dict, workdir: str):
  """PPO or GRPO (config.align.rl_algo) from `init_params` against the reward model; returns
  (the policy's model parameters, report). Writes rollouts.json and ppo_curves.png."""
  a = config.align
  train_convs, heldout_convs = split
  prompts = fixed_length_prompts(tokenizer, _first_user_messages(train_convs), a.prompt_tokens)
  heldout = fixed_length_prompts(tokenizer, _first_user_messages(heldout_convs),
                                 a.prompt_tokens)
  if len(prompts) < a.rollout_prompts or not len(heldout):
    raise ValueError(f"{len(prompts)} train and {len(heldout)} held-out prompts fill "
                     f"{a.prompt_tokens} tokens; need {a.rollout_prompts} and some held out: "
                     "lower align.prompt_tokens or raise align.conversations")
  logging.info("%s on %d prompts of %d tokens (%d held out), KL coefficient %.3g",
               a.rl_algo.upper(), len(prompts), a.prompt_tokens, len(heldout), a.kl_coef)
  task = PPOTask(config, PPOSettings.from_config(a), prompts, init_params, reward_params,
                 stop_id=tokenizer.special_id(IM_END))
  before = task.evaluate(init_params, heldout)
  params = _trained(train(config, task, workdir))
  after = task.evaluate(params, heldout)
  history = _rollout_history(task.history, os.path.join(workdir, "rollouts.json"))
  kls = [h["kl"] for h in history]
  plot = plot_rollouts(history, os.path.join(workdir, "ppo_curves.png"), max_kl=a.max_kl,
                       kl_target=a.kl_target, title=f"{a.rl_algo.upper()} on {config.name}")
  report = {"algo": a.rl_algo, "steps": config.train.steps, "rollouts": len(history),
            "prompts": {"train": int(len(prompts)), "heldout": int(len(heldout))},
            "heldout_before": before, "heldout_after": after,
            "rollout_score_first5": _mean([h["score"] for h in history[:5]]),
            "rollout_score_last5": _mean([h["score"] for h in history[-5:]]),
            "rollout_kl_max": max(kls) if kls else None, "max_kl": a.max_kl,
            "kl_within_bound": bool(a.max_kl <= 0 or (kls and max(kls) < a.max_kl)),
            "curves": plot}
  if a.max_kl > 0 and not report["kl_within_bound"]:
    logging.warning("the KL to the reference reached %.3f, over the bound align.max_kl=%g: "
                    "raise align.kl_coef or set align.kl_target", max(kls), a.max_kl)
  return params["model"], report


def _mean(values):
  return float(np.mean(values)) if values else None


def _rollout_history(history: list, path: str) -> list:
  """This run's rollouts, written to `path`; a run that resumed finished has none of its own,
  so the saved ones are read back."""
  if history or not os.path.exists(path):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump(history, f)
    os.replace(path + ".tmp", path)
    return history
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def as_numpy(params: dict) -> dict:
  return jax.tree.map(np.asarray, jax.device_get(params))

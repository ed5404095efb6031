"""The alignment stages after pretraining, each on the one loop: SFT -> reward model -> DPO.

- SFT: packaged ShareGPT conversations in the chat template, packed whole, loss on every
  assistant turn, read in curriculum order (single-turn and short first); starts from the
  pretrained parameters.
- Reward model: the SFT backbone plus a scalar head, Bradley-Terry on preference pairs
  (`preferences.py`, its data card); pair accuracy on held-out pairs.
- DPO: the SFT model as policy and frozen reference (log-probabilities precomputed once);
  implicit-reward accuracy and margin on held-out pairs, before and after.

Conversations are split into train and held-out by a hash of their id, as documents are.
"""

import itertools
import logging
import os

import jax
import ml_collections

from llm.align.chat_data import chat_rows
from llm.align.preference_tasks import (DPOTask, RewardTask, preference_metrics,
                                        with_reference_logprobs)
from llm.align.preferences import pair_rows, preference_pairs
from llm.data.packaged import sharegpt_conversations
from llm.data.sources import is_heldout
from llm.eval.perplexity import model_perplexity
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.partition import merge


def stage_config(config, steps: int, lr: float):
  c = ml_collections.ConfigDict(config.to_dict())
  c.train.steps, c.train.eval_every = steps, 0
  c.optim.lr, c.optim.warmup_steps = lr, min(10, steps)
  c.checkpoint.every_steps = max(steps, 1)
  return c


def _split_conversations(count: int):
  conversations = [c for c in itertools.islice(sharegpt_conversations(), count) if c["turns"]]
  train = [c for c in conversations if not is_heldout(c["id"], 0.1)]
  heldout = [c for c in conversations if is_heldout(c["id"], 0.1)]
  return train, heldout


class ChatSFTTask(LMTask):
  """The LM objective on chat rows; rows are read in their curriculum order."""
  name = "sft"
  shuffle = False


def run_alignment(config, tokenizer, pretrained: dict, workdir: str, *, sft_steps: int,
                  rm_steps: int, dpo_steps: int, conversations: int = 3000,
                  curriculum_stages: int = 4) -> dict:
  """Runs the three stages from the pretrained parameters; returns their report."""
  seq = config.data.seq_len
  batch = config.train.batch_size
  train_convs, heldout_convs = _split_conversations(conversations)
  report = {"conversations": {"train": len(train_convs), "heldout": len(heldout_convs)}}

  logging.info("SFT on %d conversations (curriculum in %d stages)", len(train_convs),
               curriculum_stages)
  sft_config = stage_config(config, sft_steps, 1e-3)
  sft_rows = chat_rows(tokenizer, [c["turns"] for c in train_convs], seq, curriculum_stages)
  sft_heldout = chat_rows(tokenizer, [c["turns"] for c in heldout_convs], seq)
  sft_task = ChatSFTTask(sft_config, sft_rows, init_params=pretrained)
  sft_task.init(jax.random.PRNGKey(0))
  before = model_perplexity(sft_task.model(pretrained), sft_heldout, batch)
  sft = train(sft_config, sft_task, os.path.join(workdir, "sft"))
  sft_params = merge(sft["state"]["params"], sft["frozen"])
  after = model_perplexity(sft_task.model(sft_params), sft_heldout, batch)
  report["sft"] = {"rows": int(len(sft_rows["inputs"])), "steps": sft_steps,
                   "heldout_assistant_loss_before": before["loss"],
                   "heldout_assistant_loss_after": after["loss"]}

  pairs = preference_pairs([c["turns"] for c in train_convs], seed=0)
  heldout_pairs = preference_pairs([c["turns"] for c in heldout_convs], seed=1)
  train_pair_rows = pair_rows(tokenizer, pairs, seq)
  heldout_pair_rows = pair_rows(tokenizer, heldout_pairs, seq)
  report["pairs"] = {"train": int(len(train_pair_rows["chosen_inputs"])),
                     "heldout": int(len(heldout_pair_rows["chosen_inputs"]))}

  logging.info("reward model on %d pairs", report["pairs"]["train"])
  rm_config = stage_config(config, rm_steps, 1e-3)
  rm_task = RewardTask(rm_config, train_pair_rows, init_params=sft_params)
  rm = train(rm_config, rm_task, os.path.join(workdir, "reward_model"))
  rm_params = merge(rm["state"]["params"], rm["frozen"])
  report["reward_model"] = {
      "steps": rm_steps,
      "heldout": preference_metrics(rm_task, rm_params, heldout_pair_rows, batch),
      "train": preference_metrics(rm_task, rm_params, train_pair_rows, batch)}

  logging.info("DPO on %d pairs (beta %.2f)", report["pairs"]["train"], config.align.dpo_beta)
  dpo_config = stage_config(config, dpo_steps, 5e-4)
  dpo_task = DPOTask(dpo_config, train_pair_rows, init_params=sft_params)
  train_rows = with_reference_logprobs(dpo_task, sft_params, train_pair_rows, batch)
  heldout_rows = with_reference_logprobs(dpo_task, sft_params, heldout_pair_rows, batch)
  dpo_task = DPOTask(dpo_config, train_rows, init_params=sft_params)
  dpo_before = preference_metrics(dpo_task, {"model": sft_params}, heldout_rows, batch)
  dpo = train(dpo_config, dpo_task, os.path.join(workdir, "dpo"))
  dpo_params = merge(dpo["state"]["params"], dpo["frozen"])
  report["dpo"] = {"steps": dpo_steps, "beta": config.align.dpo_beta,
                   "heldout_before": dpo_before,
                   "heldout_after": preference_metrics(dpo_task, dpo_params, heldout_rows, batch)}
  report["params"] = {"sft": sft_params, "dpo": dpo_params["model"]}
  return report

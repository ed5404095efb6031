"""The alignment stages after pretraining, each on the one loop and from its own experiment
config: chat SFT -> reward model -> DPO, and PPO (or GRPO) against the reward model.

Each stage's config (experiments/configs/{sft,rm,dpo,ppo}_tiny.py by default) brings its
steps, learning rate and objective settings; the model and sequence length come from the
pretraining config, so the stages fit whatever was pretrained. DPO and PPO both start from the
SFT model, which is also their frozen reference.
"""

import logging
import os

import ml_collections

from llm.align import stage
from llm.config import load_experiment, validate

STAGES = ("sft", "rm", "dpo", "ppo")


def stage_configs(pretrain_config, names: dict, steps: dict | None = None) -> dict:
  """{stage: config}: each named experiment config with the pretraining model and sequence
  length, and `steps[stage]` training steps where given."""
  configs = {}
  for key in STAGES:
    c = load_experiment(names[key])
    c.model = ml_collections.ConfigDict(pretrain_config.model.to_dict())
    c.data.seq_len = pretrain_config.data.seq_len
    c.seed = pretrain_config.seed
    if steps and steps.get(key) is not None:
      c.train.steps = steps[key]
      c.optim.warmup_steps = min(c.optim.warmup_steps, max(steps[key], 1))
      c.checkpoint.every_steps = max(steps[key], 1)
    configs[key] = c
  return configs


def run_alignment(configs: dict, tokenizer, pretrained: dict, workdir: str) -> dict:
  """Runs the stages whose configs have steps > 0 (SFT first, always); returns their report
  with "params": the SFT, DPO and PPO policies' parameters."""
  if configs["sft"].train.steps <= 0:
    raise ValueError("alignment starts with chat SFT: give it steps > 0")
  if configs["ppo"].train.steps > 0 and configs["rm"].train.steps <= 0:
    raise ValueError("PPO needs the reward model: give the reward-model stage steps > 0")
  for key, c in configs.items():
    if c.train.steps > 0:
      validate(c)
  split = stage.split_conversations(configs["sft"].align.conversations)
  report = {"conversations": {"train": len(split[0]), "heldout": len(split[1])}}
  params = {}
  params["sft"], report["sft"] = stage.chat_sft(configs["sft"], tokenizer, split, pretrained,
                                                os.path.join(workdir, "sft"))
  params["sft"] = stage.as_numpy(params["sft"])
  if configs["rm"].train.steps > 0:
    reward, report["reward_model"] = stage.reward_model(
        configs["rm"], tokenizer, split, params["sft"], os.path.join(workdir, "reward_model"))
    reward = stage.as_numpy(reward)
  if configs["dpo"].train.steps > 0:
    params["dpo"], report["dpo"] = stage.dpo(configs["dpo"], tokenizer, split, params["sft"],
                                             os.path.join(workdir, "dpo"))
  if configs["ppo"].train.steps > 0:
    logging.info("PPO against the reward model")
    params["ppo"], report["ppo"] = stage.rl(configs["ppo"], tokenizer, split, params["sft"],
                                            reward, os.path.join(workdir, "ppo"))
  report["params"] = params
  return report

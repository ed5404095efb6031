"""The alignment after pretraining in the lifecycle: registry.ALIGNMENT_SEQUENCE (chat_sft ->
reward_model -> dpo, and ppo against the reward model), each objective on the one loop and
from its own experiment config.

Each objective's config (its registry default_config, e.g. experiments/configs/dpo_tiny.py)
brings its steps, learning rate and settings; the model and sequence length come from the
pretraining config, so the objectives fit whatever was pretrained. All but the first start
from the first one's model (chat SFT), which is also their frozen reference.
"""

import dataclasses
import logging
import os

import ml_collections

from llm.align import registry
from llm.align.conversations import split_conversations
from llm.align.objective import StageInputs
from llm.config import load_experiment


def sequence_configs(pretrain_config, names: dict | None = None,
                     steps: dict | None = None) -> dict:
  """{objective: config}: each objective's experiment config (`names[objective]`, else its
  registry default) with the pretraining model and sequence length, and `steps[objective]`
  training steps where given."""
  configs = {}
  for name in registry.ALIGNMENT_SEQUENCE:
    config = load_experiment((names or {}).get(name) or registry.get(name).default_config)
    config.model = ml_collections.ConfigDict(pretrain_config.model.to_dict())
    config.data.seq_len = pretrain_config.data.seq_len
    config.seed = pretrain_config.seed
    if steps and steps.get(name) is not None:
      config.train.steps = steps[name]
      config.optim.warmup_steps = min(config.optim.warmup_steps, max(steps[name], 1))
      config.checkpoint.every_steps = max(steps[name], 1)
    configs[name] = config
  return configs


def run_sequence(configs: dict, tokenizer, pretrained: dict, workdir: str) -> dict:
  """Runs the objectives whose configs have steps > 0 (the first always), each in
  workdir/<name>; returns their reports by name, with "params": each one's trained
  parameters."""
  first, *rest = registry.ALIGNMENT_SEQUENCE
  if configs[first].train.steps <= 0:
    raise ValueError(f"alignment starts with {first}: give it steps > 0")
  active = [name for name in registry.ALIGNMENT_SEQUENCE if configs[name].train.steps > 0]
  for name in active:
    missing = [n for n in registry.get(name).needs if n not in active]
    if missing:
      raise ValueError(f"{name} needs {', '.join(missing)}: give it steps > 0")
  for name in active:
    registry.check_run_config(configs[name])
  conversations = split_conversations(configs[first].align.conversations)
  report = {"conversations": {"train": len(conversations[0]),
                              "heldout": len(conversations[1])}}
  params = {}
  inputs = StageInputs(tokenizer=tokenizer, conversations=conversations,
                       init_params=pretrained)
  for name in active:
    if name != first:
      inputs = dataclasses.replace(inputs, init_params=params[first], trained=params)
    logging.info("alignment: %s", name)
    params[name], report[name] = registry.get(name).train(configs[name], inputs,
                                                          os.path.join(workdir, name))
  report["params"] = params
  return report

"""The alignment stage configs, their validation, and the lifecycle's stage wiring."""

import dataclasses

import pytest

from llm.align.ppo import PPOSettings
from llm.align.stages import STAGES, run_alignment, stage_configs
from llm.config import ConfigError, load_experiment, validate
from tests.conftest import micro_config

NAMES = {"sft": "sft_tiny", "rm": "rm_tiny", "dpo": "dpo_tiny", "ppo": "ppo_tiny"}


def test_each_stage_config_validates_with_its_task():
  tasks = {"sft": "chat_sft", "rm": "reward", "dpo": "dpo", "ppo": "ppo"}
  for stage, name in NAMES.items():
    config = validate(load_experiment(name))
    assert config.train.task == tasks[stage] and config.train.steps > 0
  ppo = load_experiment("ppo_tiny").align
  assert ppo.kl_coef == 0.1 and 0 < ppo.kl_target < ppo.max_kl


def test_stage_configs_take_the_pretrained_model_and_the_given_steps():
  pretrain = micro_config()
  configs = stage_configs(pretrain, NAMES, {"sft": 7, "rm": 0, "dpo": None, "ppo": 3})
  assert list(configs) == list(STAGES)
  for config in configs.values():
    assert config.model.to_dict() == pretrain.model.to_dict()
    assert config.data.seq_len == pretrain.data.seq_len
  assert configs["sft"].train.steps == 7 and configs["rm"].train.steps == 0
  assert configs["dpo"].train.steps == load_experiment("dpo_tiny").train.steps
  assert configs["ppo"].optim.warmup_steps <= 3


def test_ppo_settings_come_from_the_config():
  align = load_experiment("ppo_tiny").align
  settings = PPOSettings.from_config(align)
  assert dataclasses.asdict(settings)["kl_target"] == align.kl_target
  assert (settings.algo, settings.epochs, settings.minibatches) == (
      align.rl_algo, align.rl_epochs, align.rl_minibatches)


@pytest.mark.parametrize("field,value,message", [
    ("align.rl_algo", "reinforce", "ppo or grpo"),
    ("align.group_size", 1, "group_size >= 2"),
    ("train.batch_size", 7, "train.batch_size=16"),
])
def test_bad_rl_settings_name_the_field_and_the_fix(field, value, message):
  config = load_experiment("ppo_tiny")
  if field == "align.group_size":
    config.align.rl_algo = "grpo"
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(ConfigError, match=message):
    validate(config)


def test_alignment_needs_sft_first_and_a_reward_model_for_ppo():
  configs = stage_configs(micro_config(), NAMES, {"sft": 0, "rm": 1, "dpo": 1, "ppo": 1})
  with pytest.raises(ValueError, match="starts with chat SFT"):
    run_alignment(configs, None, {}, "unused")
  configs = stage_configs(micro_config(), NAMES, {"sft": 1, "rm": 0, "dpo": 1, "ppo": 1})
  with pytest.raises(ValueError, match="PPO needs the reward model"):
    run_alignment(configs, None, {}, "unused")

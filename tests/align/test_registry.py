"""The registry of objectives: each one's default config validates with its own name, the
lifecycle's alignment sequence is wired from it, and a new objective is one registry entry."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import pytest

from llm import main as llm_main
from llm.align import registry
from llm.align.objective import Objective, StageInputs
from llm.align.ppo import PPOSettings
from llm.align.sequence import run_sequence, sequence_configs
from llm.config import ConfigError, load_experiment
from llm.train.lm_task import LMTask
from tests.conftest import micro_config, random_rows


def test_each_objective_default_config_names_its_objective():
  for name, objective in registry.OBJECTIVES.items():
    config = load_experiment(objective.default_config)
    if name in registry.ALIGNMENT_SEQUENCE:
      assert config.train.task == name and config.train.steps > 0
      registry.check_run_config(config)
  ppo = load_experiment("ppo_tiny").align
  assert ppo.kl_coef == 0.1 and 0 < ppo.kl_target < ppo.max_kl


def test_unknown_objective_lists_the_registered_ones():
  config = micro_config()
  config.train.task = "reward"
  with pytest.raises(ConfigError, match="train.task.*'reward_model'"):
    registry.check_run_config(config)


def test_sequence_configs_take_the_pretrained_model_and_the_given_steps():
  pretrain = micro_config()
  configs = sequence_configs(pretrain, steps={"chat_sft": 7, "reward_model": 0, "dpo": None,
                                              "ppo": 3})
  assert list(configs) == list(registry.ALIGNMENT_SEQUENCE)
  for config in configs.values():
    assert config.model.to_dict() == pretrain.model.to_dict()
    assert config.data.seq_len == pretrain.data.seq_len
  assert configs["chat_sft"].train.steps == 7 and configs["reward_model"].train.steps == 0
  assert configs["dpo"].train.steps == load_experiment("dpo_tiny").train.steps
  assert configs["ppo"].optim.warmup_steps <= 3


def test_ppo_settings_come_from_the_config():
  align = load_experiment("ppo_tiny").align
  settings = PPOSettings.from_config(align)
  assert dataclasses.asdict(settings)["kl_target"] == align.kl_target
  assert (settings.algo, settings.epochs, settings.minibatches) == (
      align.rl_algo, align.rl_epochs, align.rl_minibatches)


@pytest.mark.parametrize("field,value,message", [
    ("align.rl_algo", "reinforce", "'ppo', 'grpo'"),
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
    registry.check_run_config(config)


def test_the_sequence_needs_its_first_objective_and_what_each_needs():
  configs = sequence_configs(micro_config(), steps={"chat_sft": 0, "reward_model": 1,
                                                    "dpo": 1, "ppo": 1})
  with pytest.raises(ValueError, match="starts with chat_sft"):
    run_sequence(configs, None, {}, "unused")
  configs = sequence_configs(micro_config(), steps={"chat_sft": 1, "reward_model": 0,
                                                    "dpo": 1, "ppo": 1})
  with pytest.raises(ValueError, match="ppo needs reward_model"):
    run_sequence(configs, None, {}, "unused")


class CopyTask(LMTask):
  """A toy objective: predict the current token instead of the next one."""
  name = "copy"

  def loss_fn(self, trainable, frozen, batch, rng):
    logits = self.model(trainable, frozen)(batch["inputs"], batch["positions"],
                                           batch["segment_ids"])
    logp = jnp.take_along_axis(logits, batch["inputs"][..., None], -1)[..., 0]
    return -jnp.mean(logp - jax.nn.logsumexp(logits, axis=-1)), {}


def test_a_new_objective_is_one_registry_entry_and_trains_through_llm_main(tmp_path):
  toy = Objective("copy", lambda config, inputs: CopyTask(config, inputs.rows), "tiny",
                  inputs=lambda config, workdir: StageInputs(rows=random_rows()))
  registry.register(toy)
  try:
    with pytest.raises(ValueError, match="registered already"):
      registry.register(toy)
    config = micro_config()
    config.train.task, config.train.steps, config.optim.lr = "copy", 30, 1e-2
    report = llm_main.run(config, str(tmp_path))
  finally:
    registry.OBJECTIVES.pop("copy")
  assert report["steps"] == 30
  assert report["final_loss"] < 0.5 * report["first_loss"]  # copying is easy to learn
  assert json.loads((tmp_path / "report.json").read_text()) == report
  assert json.loads((tmp_path / "config.json").read_text())["train"]["task"] == "copy"

"""Runs read back from their workdirs: the parameters an earlier run left, with clear errors
for what is missing; an alignment objective run alone names the flags it needs."""

import json

import jax
import numpy as np
import pytest

from llm.align.earlier_runs import inputs_from_earlier_runs
from llm.train.run_loading import load_trained_params, policy_params
from llm.train.lm_task import LMTask
from llm.train.loop import train
from tests.conftest import micro_config, random_rows


def test_the_newest_checkpoint_gives_back_the_trained_parameters(tmp_path):
  config = micro_config()
  config.train.steps, config.checkpoint.every_steps = 3, 3
  result = train(config, LMTask(config, random_rows()), str(tmp_path))
  loaded = load_trained_params(str(tmp_path))
  expected = jax.device_get(result["state"]["params"])
  assert jax.tree.structure(loaded) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(a, b)
  assert policy_params({"model": loaded}) is loaded and policy_params(loaded) is loaded


def test_missing_or_partial_runs_are_explained(tmp_path):
  with pytest.raises(FileNotFoundError, match="no training run"):
    load_trained_params(str(tmp_path))
  (tmp_path / "checkpoints").mkdir()
  (tmp_path / "config.json").write_text(json.dumps({"train": {"trainable": "lora"}}))
  with pytest.raises(ValueError, match="trained only 'lora'"):
    load_trained_params(str(tmp_path))
  config = micro_config()
  config.train.task = "dpo"
  with pytest.raises(ValueError, match="align.init_from"):
    inputs_from_earlier_runs(config)
  config.align.init_from, config.data.tokenizer_path = str(tmp_path), "unused.model"
  with pytest.raises(ValueError, match="align.reward_model_from"):
    inputs_from_earlier_runs(config, needs=("reward_model",))

"""The one loop: overfitting (f), bit-exact resume (g), accumulation, outputs in the workdir."""

import json
import shutil

import jax
import numpy as np

from llm.train.lm_task import LMTask
from llm.train.loop import train
from tests.conftest import micro_config
from tests.train.helpers import random_rows


def test_tiny_model_overfits_a_fixed_batch(tmp_path):
  config = micro_config()
  config.train.steps, config.optim.lr, config.optim.warmup_steps = 150, 1e-2, 5
  config.optim.weight_decay = 0.0
  rows = {k: v[:4] for k, v in random_rows(12, 16, 64).items()}  # exactly one batch of rows
  result = train(config, LMTask(config, rows), str(tmp_path))
  assert result["history"][0]["loss"] > 3.0
  assert result["history"][-1]["loss"] < 0.1


def _resume_config():
  config = micro_config()
  config.train.steps, config.optim.lr = 8, 3e-3
  config.checkpoint.every_steps = 100  # only the stop and the end save
  return config


def test_resume_after_stop_is_bit_exact(tmp_path):
  rows = random_rows(60, 16, 64)
  config = _resume_config()
  straight = train(config, LMTask(config, rows), str(tmp_path / "straight"))
  first = train(config, LMTask(config, rows), str(tmp_path / "resumed"), stop_after=3)
  second = train(config, LMTask(config, rows), str(tmp_path / "resumed"))
  assert len(first["history"]) == 3 and len(second["history"]) == 5
  losses = [h["loss"] for h in first["history"] + second["history"]]
  assert losses == [h["loss"] for h in straight["history"]]
  jax.tree.map(np.testing.assert_array_equal, straight["state"], second["state"])


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
  rows = random_rows(60, 16, 64)
  results = {}
  for accum in (1, 2):
    config = _resume_config()
    config.train.steps, config.train.grad_accum = 3, accum
    results[accum] = train(config, LMTask(config, rows), str(tmp_path / str(accum)))
  for a, b in zip(results[1]["history"], results[2]["history"]):
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               results[1]["state"]["params"], results[2]["state"]["params"])


def test_workdir_has_config_metrics_tensorboard_and_checkpoints(tmp_path):
  config = micro_config()
  config.train.steps, config.train.eval_every = 4, 2
  config.checkpoint.every_steps, config.checkpoint.keep = 1, 2
  train(config, LMTask(config, random_rows(60, 16, 64), random_rows(10, 16, 64, seed=1)),
        str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["model"]["d_model"] == 32
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  for key in ("loss", "perplexity", "grad_norm", "update_norm", "learning_rate",
              "tokens_per_second", "mfu"):
    assert all(np.isfinite(r[key]) for r in records), key
  assert "eval_perplexity" in records[1] and "eval_perplexity" in records[3]
  assert np.isclose(records[0]["perplexity"], np.exp(records[0]["loss"]), rtol=1e-5)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3", "4"]
  assert any((tmp_path / "tensorboard").iterdir())


def test_checkpoints_written_while_training_continues_are_intact(tmp_path):
  """Async saves of a state whose buffers the next step donates must hold that step's values."""
  rows = random_rows(60, 16, 64)
  config = _resume_config()
  config.checkpoint.every_steps, config.checkpoint.keep = 2, 10
  straight = train(config, LMTask(config, rows), str(tmp_path / "a"))
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  for step in (6, 8):
    shutil.rmtree(tmp_path / "b" / "checkpoints" / str(step))
  resumed = train(config, LMTask(config, rows), str(tmp_path / "b"))
  assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"][4:]]


def test_resume_replaces_metrics_logged_after_the_checkpoint(tmp_path):
  rows = random_rows(60, 16, 64)
  config = _resume_config()
  config.checkpoint.every_steps = 2
  train(config, LMTask(config, rows), str(tmp_path), stop_after=5)  # checkpoints 2, 4 and 5
  shutil.rmtree(tmp_path / "checkpoints" / "5")  # as if the run died before saving step 5
  train(config, LMTask(config, rows), str(tmp_path))
  steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == list(range(1, 9))


def test_relative_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = _resume_config()
  config.train.steps = 2
  train(config, LMTask(config, random_rows(60, 16, 64)), "runs/relative")
  assert (tmp_path / "runs" / "relative" / "checkpoints" / "2").is_dir()

"""Recovering from loss spikes, non-finite values, damaged checkpoints; float16 loss scaling."""

import json
import logging
import math
import os

import jax
import numpy as np
import pytest

from llm.config import default_config
from llm.train.faults import FaultyTask
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.stability import LossMonitor
from tests.conftest import micro_config, random_rows


def _config(steps=30, every=5):
  config = micro_config()
  config.train.steps, config.train.batch_size = steps, 4
  config.checkpoint.every_steps, config.checkpoint.every_minutes = every, 1e6
  config.stability.min_history = 5
  return config


def _events(workdir):
  with open(os.path.join(workdir, "events.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def test_monitor_flags_spikes_and_non_finite_values():
  stability = default_config().stability
  stability.min_history, stability.spike_std = 5, 6.0
  monitor = LossMonitor(stability, float16=False)
  for step, loss in enumerate([4.0, 4.1, 3.9, 4.05, 3.95, 4.0]):
    assert monitor.check(step, {"loss": loss, "grad_norm": 1.0}) is None
  assert monitor.check(6, {"loss": 40.0, "grad_norm": 1.0}).kind == "spike"
  assert monitor.check(7, {"loss": 4.0, "grad_norm": math.nan}).kind == "nonfinite"
  assert monitor.check(8, {"loss": math.inf, "grad_norm": 1.0}).kind == "nonfinite"
  # an overflowing gradient is the loss scaler's business
  fp16 = LossMonitor(stability, float16=True)
  assert fp16.check(0, {"loss": 4.0, "grad_norm": math.inf}) is None


@pytest.mark.parametrize("fault", ["nan", 10.0])
def test_a_bad_batch_is_rolled_back_and_skipped(tmp_path, fault):
  config = _config()
  faulty = FaultyTask(LMTask(config, random_rows()), {17: fault})
  result = train(config, faulty, str(tmp_path))
  events = _events(str(tmp_path))
  kinds = [(e["kind"], e["action"]) for e in events]
  assert kinds == [("nonfinite" if fault == "nan" else "spike", "rollback")]
  assert events[0]["step"] == 18 and events[0]["to_step"] == 15  # batch 17 fed step 18
  assert events[0]["skipped_batches"] == 3
  losses = [h["loss"] for h in result["history"]]
  assert [h["step"] for h in result["history"]][-1] == 30 and all(map(math.isfinite, losses))
  assert max(losses) < 2 * min(losses)  # the spike never reached the curve


def test_repeated_incidents_stop_with_a_clear_error(tmp_path):
  config = _config()
  config.stability.max_rollbacks = 2
  faulty = FaultyTask(LMTask(config, random_rows()), {i: "nan" for i in range(8, 30)})
  with pytest.raises(RuntimeError, match="max_rollbacks"):
    train(config, faulty, str(tmp_path))
  assert [e["action"] for e in _events(str(tmp_path))] == ["rollback", "rollback", "stop"]


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
  config = _config(steps=10)
  train(config, LMTask(config, random_rows()), str(tmp_path), stop_after=10)
  latest = tmp_path / "checkpoints" / "10"
  for path in (latest / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"\0" * 7)  # truncated and garbled
  config.train.steps = 12
  with caplog.at_level(logging.WARNING):
    result = train(config, LMTask(config, random_rows()), str(tmp_path))
  assert any(str(latest) in r.getMessage() for r in caplog.records)
  assert (tmp_path / "checkpoints" / "10.corrupt").exists()
  assert [h["step"] for h in result["history"]] == list(range(6, 13))  # resumed from step 5


def test_float16_overflow_steps_are_skipped_not_applied(tmp_path):
  config = _config(steps=4, every=100)
  config.model.compute_dtype = "float16"
  config.stability.initial_loss_scale = 2.0**40  # overflows float16 gradients at first
  config.stability.action = "ignore"
  task = LMTask(config, random_rows())
  first = jax.device_get(train(config, task, str(tmp_path / "a"), stop_after=0)["state"])
  result = train(config, LMTask(config, random_rows()), str(tmp_path / "b"))
  skipped = [h["nonfinite"] for h in result["history"]]
  scales = [h["loss_scale"] for h in result["history"]]
  assert skipped[:2] == [1.0, 1.0] and scales[:3] == [2.0**40, 2.0**39, 2.0**38]
  config.train.steps = 2  # two steps, both overflowing: the parameters must not have moved
  two = jax.device_get(train(config, LMTask(config, random_rows()), str(tmp_path / "c"))["state"])
  jax.tree.map(np.testing.assert_array_equal, two["params"], first["params"])


def _learnable_rows(n=256, seq=16, seed=0):
  """Each next token follows from the current one (t -> 7t + 3 mod 60), a fifth of them noise."""
  rng = np.random.default_rng(seed)
  tokens = np.zeros((n, seq + 1), np.int64)
  tokens[:, 0] = rng.integers(0, 60, n)
  for i in range(seq):
    tokens[:, i + 1] = (7 * tokens[:, i] + 3) % 60
    noise = rng.random(n) < 0.2
    tokens[noise, i + 1] = rng.integers(0, 60, noise.sum())
  tokens = (tokens + 4).astype(np.int32)
  ones = np.ones((n, seq), np.int32)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "segment_ids": ones,
          "positions": np.tile(np.arange(seq, dtype=np.int32), (n, 1)), "loss_mask": ones}


def test_float16_with_loss_scaling_trains_like_float32(tmp_path):
  finals = {}
  for dtype in ("float32", "float16"):
    config = _config(steps=80, every=1000)
    config.train.batch_size = 16
    config.model.compute_dtype = dtype
    config.stability.loss_scale_growth = 20
    result = train(config, LMTask(config, _learnable_rows()), str(tmp_path / dtype))
    finals[dtype] = np.mean([h["loss"] for h in result["history"][-5:]])
  assert finals["float32"] < 0.6 * math.log(64)  # it learned the rule
  assert abs(finals["float16"] - finals["float32"]) <= 0.02 * finals["float32"], finals

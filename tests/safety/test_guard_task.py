"""The guard Task: its rows and its loss against a numpy binary cross-entropy."""

import jax
import numpy as np

from llm.safety.guard_task import GuardTask, guard_rows
from tests.conftest import micro_config


class _Tokens:
  bos_id, pad_id = 1, 0

  def encode(self, text):
    return [2 + ord(c) % 60 for c in text]


def test_guard_rows_and_loss_match_a_numpy_binary_cross_entropy():
  config = micro_config()
  rows = guard_rows(_Tokens(), ["abc", "a much longer text than the window"], [True, False], 16)
  assert rows["last"].tolist() == [3, 15] and rows["inputs"][0, 4] == 0
  assert rows["inputs"][0, :4].tolist() == [1] + _Tokens().encode("abc")
  task = GuardTask(config, rows)
  trainable, frozen = task.init(jax.random.key(0))
  loss, metrics = task.loss_fn(trainable, frozen, rows, None)
  np.testing.assert_allclose(float(loss), np.log(2.0), rtol=1e-6)  # the head starts at zero
  trainable["head"]["b"] = trainable["head"]["b"] + 0.7
  trainable["head"]["w"] = trainable["head"]["w"] + 0.01
  loss, metrics = task.loss_fn(trainable, frozen, rows, None)
  logits = np.asarray(task.scores({**frozen, **trainable}, rows), np.float64)
  p = 1 / (1 + np.exp(-logits))
  expected = -np.mean([np.log(p[0]), np.log(1 - p[1])])
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(metrics["accuracy"]) == np.mean((logits > 0) == np.array([True, False]))

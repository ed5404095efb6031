"""Batch iterators: deterministic, resumable from saved state, epochs reshuffled."""

import numpy as np
import pytest

from llm.data.loader import eval_batches, train_batches


def _rows(n=10):
  return {"inputs": np.arange(n * 2, dtype=np.int32).reshape(n, 2),
          "loss_mask": np.ones((n, 2), np.int32)}


def test_restored_iterator_continues_identically():
  it = train_batches(_rows(), batch_size=3, seed=7)
  for _ in range(4):
    next(it)
  state = it.get_state()
  expected = [next(it)["inputs"] for _ in range(5)]
  resumed = train_batches(_rows(), batch_size=3, seed=7)
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["inputs"], want)


def test_each_epoch_is_a_permutation_of_all_rows():
  it = train_batches(_rows(), batch_size=5, seed=0)
  epochs = [np.concatenate([next(it)["inputs"][:, 0] for _ in range(2)]) for _ in range(3)]
  for epoch in epochs:
    assert sorted(epoch.tolist()) == list(range(0, 20, 2))
  assert not all(np.array_equal(epochs[0], e) for e in epochs[1:])


def test_too_few_rows_is_a_clear_error():
  with pytest.raises(ValueError, match="train.batch_size"):
    train_batches(_rows(2), batch_size=3, seed=0)


def test_eval_batches_pad_the_last_batch_with_untrained_rows():
  batches = eval_batches(_rows(7), batch_size=3, max_batches=10)
  assert len(batches) == 3
  assert batches[-1]["loss_mask"].tolist() == [[1, 1], [0, 0], [0, 0]]

"""Deterministic, resumable batch iterators over packed rows (grain MapDataset).

The iterator state is a small dict (`get_state`/`set_state`) that the checkpoint stores, so a
resumed run sees exactly the batches an uninterrupted run would have seen.
"""

import grain
import numpy as np


class _Rows:
  """Random access to row i of a dict of equally long arrays."""

  def __init__(self, rows: dict[str, np.ndarray]):
    self._rows = rows
    self._len = len(next(iter(rows.values())))

  def __len__(self):
    return self._len

  def __getitem__(self, i):
    return {key: value[i] for key, value in self._rows.items()}


def train_batches(rows: dict[str, np.ndarray], batch_size: int, seed: int):
  """An endless iterator of shuffled batches (reshuffled every epoch) with checkpointable state."""
  n = len(next(iter(rows.values())))
  if n < batch_size:
    raise ValueError(f"only {n} packed rows but train.batch_size={batch_size}: add data "
                     "(data.max_chars) or lower the batch size")
  dataset = grain.MapDataset.source(_Rows(rows)).shuffle(seed=seed).repeat(None)
  return iter(dataset.batch(batch_size, drop_remainder=True))


def eval_batches(rows: dict[str, np.ndarray], batch_size: int, max_batches: int):
  """Up to `max_batches` batches of held-out rows, in order; the last is padded with all-zero
  rows (loss_mask 0, so they add nothing) to keep one compiled shape."""
  n = len(next(iter(rows.values())))
  count = min(max_batches, -(-n // batch_size))
  batches = []
  for i in range(count):
    batch = {k: v[i * batch_size:(i + 1) * batch_size] for k, v in rows.items()}
    short = batch_size - len(next(iter(batch.values())))
    if short:
      batch = {k: np.concatenate([v, np.zeros((short,) + v.shape[1:], v.dtype)])
               for k, v in batch.items()}
    batches.append(batch)
  return batches

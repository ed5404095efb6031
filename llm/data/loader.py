"""Deterministic, resumable, process-sharded batch iterators over packed rows (grain).

The order of *global* batches depends only on the seed and the rows: epoch e is a seeded
permutation of all rows, cut into global batches of `global_batch` rows. Process p of P reads
only rows [p * b, (p + 1) * b) of each global batch (b = global_batch / P), so together the
processes see exactly the global batch, whatever P is. The saved state is the number of global
batches consumed, so a run can resume on a different number of processes.
"""

import grain
import numpy as np


class _Rows:
  """Random access to row i of a dict of equally long arrays (or any row source)."""

  def __init__(self, rows: dict[str, np.ndarray]):
    self._rows = rows
    self._len = len(next(iter(rows.values())))

  def __len__(self):
    return self._len

  def __getitem__(self, i):
    return {key: value[i] for key, value in self._rows.items()}


class _ProcessView:
  """Item j of this process = item (j // b) * B + p * b + j % b of the global row stream."""

  def __init__(self, stream, global_batch: int, local_batch: int, shard_index: int):
    self._stream, self._g, self._b, self._p = stream, global_batch, local_batch, shard_index

  def __len__(self):
    return len(self._stream) // self._g * self._b

  def __getitem__(self, j):
    return self._stream[(j // self._b) * self._g + self._p * self._b + j % self._b]


class ShardedBatches:
  """An endless iterator of this process's part of each global batch, prefetched on threads;
  `get_state`/`set_state` are what checkpoints store."""

  def __init__(self, rows, global_batch: int, seed: int, shard_index: int = 0,
               shard_count: int = 1, prefetch: int = 4, shuffle: bool = True):
    n = len(rows) if not isinstance(rows, dict) else len(next(iter(rows.values())))
    if n < global_batch:
      raise ValueError(f"only {n} packed rows but train.batch_size={global_batch}: add data "
                       "(data.max_chars) or lower the batch size")
    if global_batch % shard_count or not 0 <= shard_index < shard_count:
      raise ValueError(f"train.batch_size={global_batch} must split evenly over "
                       f"{shard_count} processes (this is process {shard_index})")
    self._source = _Rows(rows) if isinstance(rows, dict) else rows
    self.rows, self.global_batch, self.seed = n, global_batch, seed
    self.local_batch = global_batch // shard_count
    self._shard, self._prefetch, self._shuffle = (shard_index, shard_count), prefetch, shuffle
    self._start(0)

  def _start(self, consumed: int) -> None:
    # shuffle, then repeat: grain draws a new permutation for every epoch. Unshuffled, the
    # rows come in their stored order (a curriculum) every epoch.
    stream = grain.MapDataset.source(self._source)
    stream = (stream.shuffle(seed=self.seed) if self._shuffle else stream).repeat(None)
    local = grain.MapDataset.source(
        _ProcessView(stream, self.global_batch, self.local_batch, self._shard[0]))
    local = local[consumed * self.local_batch:].batch(self.local_batch, drop_remainder=True)
    options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=self._prefetch)
    self._iterator = iter(local.to_iter_dataset(options))
    self._consumed = consumed

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._iterator)
    self._consumed += 1
    return batch

  def get_state(self) -> dict:
    return {"global_batches": self._consumed, "seed": self.seed, "rows": self.rows,
            "global_batch": self.global_batch}

  def set_state(self, state: dict) -> None:
    saved = {k: state.get(k) for k in ("seed", "rows", "global_batch")}
    mine = {"seed": self.seed, "rows": self.rows, "global_batch": self.global_batch}
    if saved != mine:
      raise ValueError(f"the checkpoint's data iterator was saved for {saved}, this run has "
                       f"{mine}: resume with the same seed, data and train.batch_size")
    self._start(int(state["global_batches"]))


def train_batches(rows, batch_size: int, seed: int, shard_index: int = 0,
                  shard_count: int = 1, shuffle: bool = True) -> ShardedBatches:
  """Shuffled batches (reshuffled every epoch; in stored order with shuffle=False): this
  process's `batch_size / shard_count` rows of each global batch of `batch_size`."""
  return ShardedBatches(rows, batch_size, seed, shard_index, shard_count, shuffle=shuffle)


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

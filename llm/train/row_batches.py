"""Batches from in-memory or packed rows, for Tasks that hold `config`, `train_rows` and
`eval_rows` (pretraining, SFT, reward modelling, DPO)."""

import jax

from llm.data.loader import eval_batches, train_batches


class RowBatches:
  shuffle = True  # False: rows in their stored order (a curriculum)

  def train_batches(self, seed: int):
    """This process's share of each global batch of train.batch_size rows."""
    return train_batches(self.train_rows, self.config.train.batch_size, seed,
                         jax.process_index(), jax.process_count(), shuffle=self.shuffle)

  def eval_batches(self):
    if self.eval_rows is None:
      return []
    return eval_batches(self.eval_rows, self.config.train.batch_size,
                        self.config.train.eval_batches)

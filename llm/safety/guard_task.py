"""The guard as a Task of the one training loop: the decoder backbone plus a scalar head on the
last real token, trained with binary cross-entropy to give the logit of P(unsafe).

Rows (`guard_rows`) hold one text each: a prompt, or a prompt and a reply (`guard_text`), cut
to the window from its start, with its label under "unsafe".
"""

import jax.numpy as jnp
import numpy as np
import optax

from llm.train.partition import merge
from llm.train.row_batches import RowBatches
from llm.train.scalar_head import LastTokenScores
from llm.train.task import ModelTask


def guard_rows(tokenizer, texts: list[str], unsafe: list[bool], seq_len: int) -> dict:
  """inputs/positions/segment_ids [n, seq_len], last [n] (the final real token), unsafe [n]."""
  n = len(texts)
  rows = {k: np.zeros((n, seq_len), np.int32) for k in ("inputs", "positions", "segment_ids")}
  rows["last"] = np.zeros((n,), np.int32)
  rows["unsafe"] = np.asarray(unsafe, np.float32)
  for r, text in enumerate(texts):
    ids = ([tokenizer.bos_id] + tokenizer.encode(text))[:seq_len]
    rows["inputs"][r, :len(ids)] = ids
    rows["inputs"][r, len(ids):] = tokenizer.pad_id
    rows["positions"][r, :len(ids)] = np.arange(len(ids))
    rows["segment_ids"][r, :len(ids)] = 1
    rows["last"][r] = len(ids) - 1
  return rows


class GuardTask(LastTokenScores, RowBatches, ModelTask):
  """`scores(params, rows)` is the logit of P(unsafe) per row."""
  name = "guard"

  def __init__(self, config, train_rows: dict, eval_rows: dict | None = None,
               init_params: dict | None = None):
    ModelTask.__init__(self, config, init_params)
    self.train_rows, self.eval_rows = train_rows, eval_rows

  def loss_fn(self, trainable, frozen, batch, rng):
    del rng
    logits = self.scores(merge(trainable, frozen), batch)
    labels = batch["unsafe"].astype(jnp.float32)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
    accuracy = jnp.mean((logits > 0) == (labels > 0.5))
    return loss, {"accuracy": accuracy, "weight": jnp.float32(logits.shape[0])}

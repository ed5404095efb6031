"""Held-out perplexity of a model, and of a unigram baseline to compare it with."""

import math

import jax
import numpy as np

from llm.data.loader import eval_batches
from llm.train.losses import masked_cross_entropy


def model_perplexity(model_fn, rows: dict[str, np.ndarray], batch_size: int) -> dict:
  """Token-weighted perplexity over all rows; model_fn(inputs, positions, segments) -> logits."""
  @jax.jit
  def batch_loss(batch):
    logits = model_fn(batch["inputs"], batch["positions"], batch["segment_ids"])
    loss, tokens = masked_cross_entropy(logits, batch["targets"], batch["loss_mask"])
    return loss * tokens, tokens

  total, tokens = 0.0, 0.0
  for batch in eval_batches(rows, batch_size, max_batches=1 << 30):
    loss_sum, count = jax.device_get(batch_loss(batch))
    total, tokens = total + float(loss_sum), tokens + float(count)
  return {"loss": total / tokens, "perplexity": math.exp(total / tokens), "tokens": int(tokens)}


def unigram_perplexity(train_rows, eval_rows, vocab_size: int) -> float:
  """Perplexity of add-one-smoothed unigram frequencies from the training targets."""
  counts = np.bincount(train_rows["targets"][train_rows["loss_mask"] > 0],
                       minlength=vocab_size) + 1.0
  log_probs = np.log(counts / counts.sum())
  targets = eval_rows["targets"][eval_rows["loss_mask"] > 0]
  return float(np.exp(-log_probs[targets].mean()))

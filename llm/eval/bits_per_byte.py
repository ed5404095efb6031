"""Bits per byte of raw text: the model's total negative log-likelihood of the text's tokens,
in bits, over the text's UTF-8 bytes. Unlike perplexity it compares models whose tokenizers
differ.

Each text is tokenized whole and cut into windows of `window` tokens; every window starts
with the beginning-of-sequence token, so every text token is predicted exactly once, with the
context of its own window (short windows are padded and masked: one compiled shape).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.data.curation.heldout import is_heldout
from llm.data.curation.sources import load_documents


def _with_weights_as_arguments(logits_fn):
  """(fn(weights, ids), weights). A module's weights are passed to the compiled program
  rather than closed over, so XLA does not fold a large embedding into it as a constant."""
  if isinstance(logits_fn, nnx.Module):
    graphdef, weights = nnx.split(logits_fn)
    return (lambda w, ids: nnx.merge(graphdef, w)(ids)), weights
  return (lambda _, ids: logits_fn(ids)), None


def bits_per_byte(logits_fn, tokenizer, texts: list[str], window: int = 256,
                  bos_id: int | None = None) -> dict:
  """logits_fn(ids [1, t]) -> logits [1, t, vocab] (a model, or any function); returns
  bits_per_byte, nats_per_token, tokens and bytes."""
  forward, weights = _with_weights_as_arguments(logits_fn)

  @jax.jit
  def nll(weights, ids, targets, mask):
    logp = jax.nn.log_softmax(forward(weights, ids).astype(jnp.float32), axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * mask)

  start = tokenizer.bos_id if bos_id is None else bos_id
  total, tokens, size = 0.0, 0, 0
  for text in texts:
    ids = tokenizer.encode(text)
    size += len(text.encode("utf-8"))
    tokens += len(ids)
    for at in range(0, len(ids), window - 1):
      piece = ids[at:at + window - 1]
      inputs, targets, mask = (np.zeros((1, window - 1), dtype) for dtype in
                               (np.int32, np.int32, np.float32))  # one compiled shape
      inputs[0, :len(piece)] = [start] + piece[:-1]
      targets[0, :len(piece)], mask[0, :len(piece)] = piece, 1.0
      total += float(nll(weights, inputs, targets, mask))
  return {"bits_per_byte": total / math.log(2) / max(size, 1),
          "nats_per_token": total / max(tokens, 1), "tokens": tokens, "bytes": size}


def perplexity(logits_fn, tokenizer, texts: list[str], window: int = 256) -> float:
  """exp(mean negative log-likelihood per token) over the texts (see `bits_per_byte`)."""
  return math.exp(bits_per_byte(logits_fn, tokenizer, texts, window)["nats_per_token"])


def heldout_texts(source: str, chars: int) -> list[str]:
  """Documents of a packaged source in its stable 2% held-out split, up to `chars`."""
  texts, total = [], 0
  for doc in load_documents(source, 20 * chars):
    if is_heldout(doc["id"], 0.02) and total < chars:
      texts.append(doc["text"][:chars - total])
      total += len(texts[-1])
  return texts

"""Sampling every sequence of a step at once, each with its own settings, on the device.

Each row's random key is derived from its request's seed and the index of the token being
sampled, so a request's tokens do not depend on its neighbours in the batch, nor on whether it
was preempted and recomputed. Log-probabilities are the model's own (before temperature and
filtering), as OpenAI reports them.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from llm.serve.sampling_params import MAX_TOP_LOGPROBS


class SamplingArrays(NamedTuple):
  temperature: jax.Array  # [S] float32; 0 = greedy
  top_p: jax.Array        # [S] float32
  top_k: jax.Array        # [S] int32; 0 = all
  seed: jax.Array         # [S] uint32
  index: jax.Array        # [S] int32: which output token this is
  banned: jax.Array       # [S, K] int32 ids that may not be sampled yet (vocab size: none)


class Sampled(NamedTuple):
  tokens: jax.Array        # [S] int32
  logprob: jax.Array       # [S] float32 of the chosen token
  top_logprobs: jax.Array  # [S, 20] float32, most likely first
  top_ids: jax.Array       # [S, 20] int32


def _filter_top_k_top_p(logits, top_k, top_p):
  """Keeps each row's top_k most likely tokens and the smallest set reaching top_p."""
  vocab = logits.shape[-1]
  ordered = -jnp.sort(-logits, axis=-1)
  k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
  kth = jnp.take_along_axis(ordered, (k - 1)[:, None], axis=-1)
  probs = jax.nn.softmax(ordered, axis=-1)
  before = jnp.cumsum(probs, axis=-1) - probs  # mass of the tokens ranked above
  keep = jnp.sum(before < top_p[:, None], axis=-1)  # >= 1
  pth = jnp.take_along_axis(ordered, (keep - 1)[:, None], axis=-1)
  return jnp.where(logits < jnp.maximum(kth, pth), -jnp.inf, logits)


def sample(logits, arrays: SamplingArrays) -> Sampled:
  """logits [S, vocab] float32 -> the sampled tokens and their log-probabilities."""
  rows = jnp.arange(logits.shape[0])[:, None]
  logprobs = jax.nn.log_softmax(logits, axis=-1)
  top_logprobs, top_ids = jax.lax.top_k(logprobs, MAX_TOP_LOGPROBS)
  allowed = logits.at[rows, arrays.banned].set(-jnp.inf, mode="drop")
  greedy = jnp.argmax(allowed, axis=-1)
  scaled = allowed / jnp.maximum(arrays.temperature, 1e-6)[:, None]
  needs_filter = jnp.any(((arrays.top_k > 0) | (arrays.top_p < 1)) & (arrays.temperature > 0))
  scaled = jax.lax.cond(needs_filter, _filter_top_k_top_p, lambda x, *_: x, scaled,
                        arrays.top_k, arrays.top_p)
  keys = jax.vmap(lambda s, i: jax.random.fold_in(jax.random.key(s), i))(arrays.seed,
                                                                          arrays.index)
  drawn = jax.vmap(jax.random.categorical)(keys, scaled)
  tokens = jnp.where(arrays.temperature > 0, drawn, greedy).astype(jnp.int32)
  chosen = jnp.take_along_axis(logprobs, tokens[:, None], axis=-1)[:, 0]
  return Sampled(tokens, chosen, top_logprobs, top_ids.astype(jnp.int32))

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
  logprobs: jax.Array     # [S] bool: whether the row's request wants log-probabilities


class Sampled(NamedTuple):
  tokens: jax.Array        # [S] int32
  logprob: jax.Array       # [S] float32 of the chosen token
  top_logprobs: jax.Array  # [S, 20] float32, most likely first
  top_ids: jax.Array       # [S, 20] int32


def _bisect(low, high, at_least, steps: int = 32):
  """The largest threshold in [low, high] (per row) for which `at_least(threshold)` holds,
  by bisection: XLA sorts a 49k vocabulary slowly on CPU; 32 masked sums are fast."""
  def halve(_, bounds):
    low, high = bounds
    middle = (low + high) / 2
    ok = at_least(middle)
    return jnp.where(ok, middle, low), jnp.where(ok, high, middle)
  return jax.lax.fori_loop(0, steps, halve, (low, high))[0]


def _filter_top_k_top_p(logits, top_k, top_p):
  """Keeps each row's top_k most likely tokens (ties kept) and the smallest set of most likely
  tokens whose probability reaches top_p."""
  vocab = logits.shape[-1]
  k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
  finite = jnp.where(jnp.isfinite(logits), logits, jnp.inf)
  kth = _bisect(finite.min(-1), logits.max(-1),
                lambda t: jnp.sum(logits >= t[:, None], axis=-1) >= k)
  probs = jax.nn.softmax(logits, axis=-1)
  pth = _bisect(jnp.zeros_like(top_p), probs.max(-1),
                lambda t: jnp.sum(jnp.where(probs >= t[:, None], probs, 0.0), -1) >= top_p)
  return jnp.where((logits >= kth[:, None]) & (probs >= pth[:, None]), logits, -jnp.inf)


def _draw(scaled, keys):
  """One token per row from softmax(scaled) by inverting its cumulative distribution: one
  uniform number per row instead of a Gumbel draw per vocabulary entry."""
  cdf = jnp.cumsum(jax.nn.softmax(scaled, axis=-1), axis=-1)
  u = jax.vmap(jax.random.uniform)(keys) * cdf[:, -1]
  return jnp.minimum(jnp.sum(cdf <= u[:, None], axis=-1), scaled.shape[-1] - 1)


def sample(logits, arrays: SamplingArrays) -> Sampled:
  """logits [S, vocab] float32 -> the sampled tokens and their log-probabilities."""
  rows = jnp.arange(logits.shape[0])[:, None]
  allowed = logits.at[rows, arrays.banned].set(-jnp.inf, mode="drop")
  greedy = jnp.argmax(allowed, axis=-1)
  scaled = allowed / jnp.maximum(arrays.temperature, 1e-6)[:, None]
  needs_filter = jnp.any(((arrays.top_k > 0) | (arrays.top_p < 1)) & (arrays.temperature > 0))
  scaled = jax.lax.cond(needs_filter, _filter_top_k_top_p, lambda x, *_: x, scaled,
                        arrays.top_k, arrays.top_p)
  keys = jax.vmap(lambda s, i: jax.random.fold_in(jax.random.key(s), i))(arrays.seed,
                                                                          arrays.index)
  drawn = jax.lax.cond(jnp.any(arrays.temperature > 0), _draw,
                       lambda x, _: jnp.zeros(x.shape[0], jnp.int32), scaled, keys)
  tokens = jnp.where(arrays.temperature > 0, drawn, greedy).astype(jnp.int32)
  return Sampled(tokens, *jax.lax.cond(jnp.any(arrays.logprobs), _logprobs, _no_logprobs,
                                       logits, tokens))


def _logprobs(logits, tokens):
  logprobs = jax.nn.log_softmax(logits, axis=-1)
  top_logprobs, top_ids = jax.lax.top_k(logprobs, MAX_TOP_LOGPROBS)
  chosen = jnp.take_along_axis(logprobs, tokens[:, None], axis=-1)[:, 0]
  return chosen, top_logprobs, top_ids.astype(jnp.int32)


def _no_logprobs(logits, tokens):  # a pure-decoding batch skips a pass over the vocabulary
  rows = logits.shape[0]
  return (jnp.zeros(rows), jnp.zeros((rows, MAX_TOP_LOGPROBS)),
          jnp.zeros((rows, MAX_TOP_LOGPROBS), jnp.int32))

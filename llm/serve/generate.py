"""Autoregressive sampling with a KV cache: one prefill, then one token per step."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def sample_token(logits, rng, temperature: float, top_k: int):
  """logits [batch, vocab] -> token ids [batch]; temperature 0 is greedy."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1)
  logits = logits / temperature
  if top_k > 0:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  return jax.random.categorical(rng, logits, axis=-1)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "temperature",
                                             "top_k"))
def generate(graphdef, params, prompt, rng, *, max_new_tokens: int, temperature: float = 0.8,
             top_k: int = 40, prompt_len=None):
  """prompt [batch, prompt_len] int32 -> tokens [batch, max_new_tokens] sampled after it.

  `prompt_len` (traced, so one compilation serves many lengths) marks where a right-padded
  prompt really ends: decoding starts there and overwrites the padding in the cache, which
  causal masking keeps out of sight until then.
  """
  model = nnx.merge(graphdef, params)
  batch, padded_len = prompt.shape
  prompt_len = padded_len if prompt_len is None else prompt_len
  cache = model.init_cache(batch, padded_len + max_new_tokens)
  logits, cache = model.decode(prompt, cache, 0)
  logits = jax.lax.dynamic_index_in_dim(logits, prompt_len - 1, axis=1)

  def one_token(carry, step_rng):
    last_logits, cache, index = carry  # last_logits [batch, vocab]
    token = sample_token(last_logits, step_rng, temperature, top_k)
    logits, cache = model.decode(token[:, None], cache, index)
    return (logits[:, -1], cache, index + 1), token

  _, tokens = jax.lax.scan(one_token, (logits[:, -1], cache, prompt_len),
                           jax.random.split(rng, max_new_tokens))
  return tokens.T


def complete(graphdef, params, ids: list[int], new_tokens: int, *, stop_ids=(),
             keep_stop: bool = False, temperature: float = 0.0, top_k: int = 40, rng=None,
             bucket: int = 64) -> list[int]:
  """One prompt's continuation, cut at the first stop token (kept if `keep_stop`).

  The prompt is right-padded to a multiple of `bucket`, so prompts of many lengths share a
  handful of compilations. (With capacity-limited MoE layers the padding competes for expert
  capacity during the prefill; use bucket=1 there for exact results.)
  """
  padded = -(-len(ids) // bucket) * bucket
  prompt = jnp.asarray([list(ids) + [0] * (padded - len(ids))], jnp.int32)
  out = generate(graphdef, params, prompt, jax.random.key(0) if rng is None else rng,
                 max_new_tokens=new_tokens, temperature=temperature, top_k=top_k,
                 prompt_len=jnp.int32(len(ids)))
  out = [int(t) for t in out[0]]
  stops = set(stop_ids)
  end = next((i for i, t in enumerate(out) if t in stops), None)
  return out if end is None else out[:end + 1 if keep_stop else end]

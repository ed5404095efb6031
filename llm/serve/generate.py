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
             top_k: int = 40):
  """prompt [batch, prompt_len] int32 -> tokens [batch, max_new_tokens] sampled after it."""
  model = nnx.merge(graphdef, params)
  batch, prompt_len = prompt.shape
  cache = model.init_cache(batch, prompt_len + max_new_tokens)
  logits, cache = model.decode(prompt, cache, 0)

  def one_token(carry, step_rng):
    last_logits, cache, index = carry  # last_logits [batch, vocab]
    token = sample_token(last_logits, step_rng, temperature, top_k)
    logits, cache = model.decode(token[:, None], cache, index)
    return (logits[:, -1], cache, index + 1), token

  _, tokens = jax.lax.scan(one_token, (logits[:, -1], cache, prompt_len),
                           jax.random.split(rng, max_new_tokens))
  return tokens.T

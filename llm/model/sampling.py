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

  `prompt_len` (traced: one compilation serves many lengths; a scalar, or one length per row)
  marks where right-padded prompts really end: each row decodes from there and overwrites its
  padding in the cache, which causal masking keeps out of sight until then.
  """
  model = nnx.merge(graphdef, params)
  batch, padded_len = prompt.shape
  index = padded_len if prompt_len is None else jnp.asarray(prompt_len, jnp.int32)
  cache = model.init_cache(batch, padded_len + max_new_tokens)
  logits, cache = model.decode(prompt, cache, 0)
  if jnp.ndim(index) == 0:
    last = jax.lax.dynamic_index_in_dim(logits, index - 1, axis=1, keepdims=False)
  else:
    last = jnp.take_along_axis(logits, (index - 1)[:, None, None], axis=1)[:, 0]

  def one_token(carry, step_rng):
    last_logits, cache, index = carry  # last_logits [batch, vocab]
    token = sample_token(last_logits, step_rng, temperature, top_k)
    logits, cache = model.decode(token[:, None], cache, index)
    return (logits[:, -1], cache, index + 1), token

  _, tokens = jax.lax.scan(one_token, (last, cache, index),
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
  return complete_many(graphdef, params, [ids], new_tokens, stop_ids=stop_ids,
                       keep_stop=keep_stop, temperature=temperature, top_k=top_k, rng=rng,
                       bucket=bucket, batch_size=1)[0]


def complete_many(graphdef, params, prompts: list[list[int]], new_tokens: int, *, stop_ids=(),
                  keep_stop: bool = False, temperature: float = 0.0, top_k: int = 40,
                  rng=None, bucket: int = 64, batch_size: int = 8) -> list[list[int]]:
  """`complete` for many prompts, `batch_size` at a time (similar lengths together, so little
  padding), in the prompts' order. The last batch is filled up with copies, keeping one
  compiled batch shape."""
  if not prompts:
    return []
  rng = jax.random.key(0) if rng is None else rng
  batch_size = min(batch_size, len(prompts))
  order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
  out = [None] * len(prompts)
  for at in range(0, len(order), batch_size):
    rows = order[at:at + batch_size]
    rows += [rows[-1]] * (batch_size - len(rows))
    padded = -(-max(len(prompts[i]) for i in rows) // bucket) * bucket
    batch = jnp.asarray([list(prompts[i]) + [0] * (padded - len(prompts[i])) for i in rows],
                        jnp.int32)
    lengths = jnp.asarray([len(prompts[i]) for i in rows], jnp.int32)
    tokens = generate(graphdef, params, batch, rng if at == 0 else jax.random.fold_in(rng, at),
                      max_new_tokens=new_tokens, temperature=temperature, top_k=top_k,
                      prompt_len=lengths if batch_size > 1 else lengths[0])
    for i, row in zip(rows, tokens.tolist()):
      out[i] = _cut(row, set(stop_ids), keep_stop)
  return out


def _cut(tokens: list[int], stops: set, keep_stop: bool) -> list[int]:
  end = next((i for i, t in enumerate(tokens) if t in stops), None)
  return tokens if end is None else tokens[:end + 1 if keep_stop else end]

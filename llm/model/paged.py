"""The model's forward pass over a paged KV cache: what the serving engine runs each step.

The step's tokens are one flat row [T] (prefill chunks and decode tokens of many sequences side
by side); everything but attention runs on that row. Attention writes each token's key/value
into its slot of the block pool, regroups the queries per sequence [S, t] and attends over the
sequence's blocks (kernels/paged_attention*.py). The pool is a loop carry, updated in place.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from llm.model import attention_impls
from llm.model.rope import rotary_tables


class PagedBatch(NamedTuple):
  """One engine step, padded to bucketed shapes (T tokens, S sequences, t rows, B blocks)."""
  tokens: jax.Array        # [T] token ids
  positions: jax.Array     # [T] position of each token in its sequence
  slots: jax.Array         # [T] block * block_size + offset its key/value is written to
  block_tables: jax.Array  # [S, B] each sequence's blocks in order
  seq_lens: jax.Array      # [S] keys each sequence has after this step (0: padding)
  query_index: jax.Array   # [S, t] flat index of each sequence's query rows
  q_positions: jax.Array   # [S, t] their positions
  token_seq: jax.Array     # [T] which sequence each flat token belongs to
  token_row: jax.Array     # [T] and which of its query rows it is
  last_index: jax.Array    # [S] flat index of each sequence's last token (its logits)


class PagedCache(NamedTuple):
  """The block pools of all layers, which layer is running, and the step's batch."""
  k: jax.Array  # [layers, num_blocks, block_size, kv_heads, head_dim]
  v: jax.Array
  layer: jax.Array
  batch: PagedBatch


def init_pools(model_config, num_blocks: int, block_size: int, dtype=jnp.float32):
  """Empty key and value pools for every layer."""
  shape = (model_config.num_layers, num_blocks, block_size, model_config.num_kv_heads,
           model_config.head_dim)
  return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)


def paged_kernel(impl: str, dtype):
  """The paged-attention function for `model.attention_impl`: our Pallas kernel where the
  flash kernels would run (pallas, triton, auto on GPUs), else the jnp gather reference."""
  if attention_impls.resolve(impl, dtype) in ("pallas", "triton", "cudnn"):
    from kernels.paged_attention import paged_attention
    return paged_attention
  from kernels.paged_attention_reference import paged_attention_reference
  return paged_attention_reference


def paged_attend(impl: str, q, k, v, cache: PagedCache):
  """q [1, T, h, d], k/v [1, T, kv, d] of the step's tokens -> ([1, T, h, d] float32, cache
  with this layer's new keys/values written)."""
  batch = cache.batch
  block_size = cache.k.shape[2]
  blocks, offsets = batch.slots // block_size, batch.slots % block_size
  k_pool = cache.k.at[cache.layer, blocks, offsets].set(k[0].astype(cache.k.dtype))
  v_pool = cache.v.at[cache.layer, blocks, offsets].set(v[0].astype(cache.v.dtype))
  grouped = q[0][batch.query_index]  # [S, t, h, d]
  out = paged_kernel(impl, q.dtype)(grouped, k_pool, v_pool, cache.layer, batch.block_tables,
                                    batch.seq_lens, batch.q_positions)
  out = out[batch.token_seq, batch.token_row]  # back to the flat row [T, h, d]
  return out[None], cache._replace(k=k_pool, v=v_pool)


def paged_forward(model, k_pool, v_pool, batch: PagedBatch):
  """(logits [S, vocab] float32 at each sequence's last token, k_pool, v_pool)."""
  tokens, positions = batch.tokens[None], batch.positions[None]
  segment_ids = jnp.ones_like(tokens)
  x = jnp.asarray(model.embed[...])[tokens].astype(jnp.float32)
  rotary = rotary_tables(positions, model.rope_inv_freq, model.rope_attention_scale)

  def run(block, x, k, v, layer):
    x, cache, _ = block(x, rotary, positions, segment_ids, PagedCache(k, v, layer, batch))
    return x, cache.k, cache.v

  if model.scan_layers:
    graphdef, stacked = nnx.split(model.layers)

    def body(carry, layer):
      state, index = layer
      return run(nnx.merge(graphdef, state), *carry, index), None

    (x, k_pool, v_pool), _ = jax.lax.scan(
        body, (x, k_pool, v_pool), (stacked, jnp.arange(model.num_layers)))
  else:
    for index, block in enumerate(model.layers):
      x, k_pool, v_pool = run(block, x, k_pool, v_pool, jnp.int32(index))
  features = model.final_norm(x)[:, batch.last_index]  # [1, S, d]
  return model.head(features)[0], k_pool, v_pool

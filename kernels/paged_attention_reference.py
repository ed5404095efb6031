"""Paged attention in jnp: gather each sequence's blocks, then masked softmax attention.

    out = paged_attention_reference(q, k_pool, v_pool, layer, block_tables, seq_lens, q_positions)

The KV cache of all layers lives in fixed-size blocks, k_pool/v_pool [layers, num_blocks,
block_size, kv_heads, head_dim]; the key at position p of sequence s sits in block
block_tables[s, p // block_size] at offset p % block_size. A query row at position q sees the
keys at positions k <= q and k < seq_lens[s]; a row that sees none returns zeros. The reference
every paged kernel is tested against, and what the serving engine runs where no kernel does.
"""

import jax
import jax.numpy as jnp

from kernels.attention_reference import MASK_VALUE

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 on GPUs: the reference is exact float32


def gather_blocks(pool, layer, block_tables):
  """[S, max_blocks * block_size, kv_heads, d]: each sequence's cache rows in position order.

  One gather from the pool of all layers; the layer is never sliced out on its own.
  """
  blocks = pool[layer, block_tables]  # [S, max_blocks, block_size, kv_heads, d]
  s, max_blocks, block_size = blocks.shape[:3]
  return blocks.reshape(s, max_blocks * block_size, *blocks.shape[3:])


def visible_keys(num_keys: int, seq_lens, q_positions):
  """Boolean [S, t, num_keys]: a row at position q sees key k iff k <= q and k < seq_len."""
  keys = jnp.arange(num_keys, dtype=jnp.int32)[None, None, :]
  return (keys <= q_positions[:, :, None]) & (keys < seq_lens[:, None, None])


def paged_attention_reference(q, k_pool, v_pool, layer, block_tables, seq_lens, q_positions):
  """Attention of q [S, t, h, d] over each sequence's paged keys -> float32 [S, t, h, d].

  Query head j reads kv head j // (h // kv_heads); scores are scaled by 1/sqrt(d) and the
  softmax runs in float32. `layer` may be a traced int32 scalar.
  """
  s, t, heads, d = q.shape
  kv_heads = k_pool.shape[3]
  if heads % kv_heads:
    raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
  k = gather_blocks(k_pool, layer, block_tables).astype(jnp.float32)
  v = gather_blocks(v_pool, layer, block_tables).astype(jnp.float32)
  grouped = q.astype(jnp.float32).reshape(s, t, kv_heads, heads // kv_heads, d)
  scores = jnp.einsum("stkgd,sckd->skgtc", grouped, k, precision=_HIGHEST) * d ** -0.5
  visible = visible_keys(k.shape[1], seq_lens, q_positions)[:, None, None]  # [S, 1, 1, t, C]
  scores = jnp.where(visible, scores, MASK_VALUE)
  probs = jnp.where(visible, jnp.exp(scores - scores.max(axis=-1, keepdims=True)), 0.0)
  total = probs.sum(axis=-1, keepdims=True)
  probs = probs / jnp.where(total > 0, total, 1.0)  # rows that see no key stay zero
  out = jnp.einsum("skgtc,sckd->stkgd", probs, v, precision=_HIGHEST)
  return out.reshape(s, t, heads, d)

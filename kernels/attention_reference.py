"""Plain attention in jnp: the reference every attention kernel is tested against.

Layouts follow the model: q [batch, q_len, heads, head_dim], k/v [batch, kv_len, kv_heads,
head_dim]. K/V heads are repeated for grouped queries (the kernels must not do this).
"""

import jax
import jax.numpy as jnp

# A large finite negative instead of -inf, so fully masked rows stay finite.
MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


def attention_mask(q_len: int, kv_len: int, segment_ids=None, kv_segment_ids=None, *,
                   causal: bool):
  """Boolean [batch or 1, q_len, kv_len]: causal by index and equal segment ids."""
  mask = jnp.ones((1, q_len, kv_len), bool)
  if causal:
    mask &= (jnp.arange(q_len)[:, None] >= jnp.arange(kv_len)[None, :])[None]
  if segment_ids is not None:
    mask &= segment_ids[:, :, None] == kv_segment_ids[:, None, :]
  return mask


def reference_attention(q, k, v, segment_ids=None, kv_segment_ids=None, *, causal: bool = True,
                        sm_scale: float | None = None):
  """softmax(q k^T * scale + mask) v, computed in float32; returns q's dtype."""
  heads, kv_heads = q.shape[2], k.shape[2]
  if heads % kv_heads:
    raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({kv_heads})")
  if kv_segment_ids is None:
    kv_segment_ids = segment_ids
  scale = q.shape[-1] ** -0.5 if sm_scale is None else sm_scale
  group = heads // kv_heads
  k = jnp.repeat(k.astype(jnp.float32), group, axis=2)
  v = jnp.repeat(v.astype(jnp.float32), group, axis=2)
  scores = jnp.einsum("bthd,bshd->bhts", q.astype(jnp.float32), k) * scale
  mask = attention_mask(q.shape[1], k.shape[1], segment_ids, kv_segment_ids, causal=causal)
  scores = jnp.where(mask[:, None], scores, MASK_VALUE)
  probs = jax.nn.softmax(scores, axis=-1)
  return jnp.einsum("bhts,bshd->bthd", probs, v).astype(q.dtype)

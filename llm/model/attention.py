"""Grouped-query attention (MHA when kv_heads == heads, MQA when kv_heads == 1).

The mask combines causality (by position) and document boundaries (by segment id), so packed
documents never attend across. With a KV cache, new keys/values are written at `cache_index` and
attention runs over the whole cache; unwritten slots sit at later positions and are masked out.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from llm.model import attention_impls
from llm.model.blocked_attention import blocked_attention
from llm.model.lora import attach_loras, project
from llm.model.ops import mixed_einsum
from llm.model.paged import PagedCache, paged_attend
from llm.model.rope import apply_rotary


class LayerCache(NamedTuple):
  """One layer's cache: keys/values [batch, max_len, kv_heads, head_dim]."""
  k: jax.Array
  v: jax.Array


def attention_mask(q_pos, k_pos, q_seg, k_seg):
  """Boolean [batch, 1, 1, q_len, k_len]: key visible iff earlier-or-same position, same segment."""
  causal = q_pos[:, :, None] >= k_pos[:, None, :]
  same_doc = q_seg[:, :, None] == k_seg[:, None, :]
  return (causal & same_doc)[:, None, None]


def _write_cache(cache, new, index):
  """cache [batch, max_len, ...] with new [batch, t, ...] written at `index` (a scalar, or one
  index per row)."""
  if jnp.ndim(index) == 0:
    return jax.lax.dynamic_update_slice_in_dim(cache, new, index, 1)
  return jax.vmap(lambda c, x, i: jax.lax.dynamic_update_slice_in_dim(c, x, i, 0))(
      cache, new, index)


def _dense_attention(q, k, v, mask):
  b, t, h, d = q.shape
  kv_heads = k.shape[2]
  q = (q * (1.0 / d**0.5)).astype(q.dtype).reshape(b, t, kv_heads, h // kv_heads, d)
  scores = mixed_einsum("btkgd,bskd->bkgts", q, k, q.dtype)
  scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1)
  out = mixed_einsum("bkgts,bskd->btkgd", probs, v, v.dtype)
  return out.reshape(b, t, h, d)


def xla_attention(q, k, v, mask, query_block: int = 128):
  """Attention in plain XLA. q [b,t,h,d], k/v [b,s,kv,d], mask [b,1,1,t,s] -> [b,t,h,d] float32.

  When queries and keys are the same sequence (training, prefill), `blocked_attention` runs it:
  query blocks that attend only to keys up to the block's end, with flash attention's backward.
  """
  if q.shape[1] == k.shape[1]:
    return blocked_attention(q, k, v, mask, query_block)
  return _dense_attention(q, k, v, mask)


def attend(impl: str, q, k, v, mask, segment_ids, cached: bool):
  """Dispatches to `model.attention_impl` (see attention_impls.py); returns float32."""
  impl = attention_impls.resolve(impl, q.dtype)
  if impl in ("pallas", "triton") and not cached:
    return attention_impls.flash(q, k, v, segment_ids, forward=impl).astype(jnp.float32)
  if impl == "cudnn":  # NVIDIA GPUs only; q/k/v must be bfloat16 or float16
    out = jax.nn.dot_product_attention(q, k, v, mask=mask[:, 0], implementation="cudnn")
    return out.astype(jnp.float32)
  if impl not in attention_impls.IMPLS:
    raise ValueError(f"unknown attention implementation {impl!r}")
  return xla_attention(q, k, v, mask)


class Attention(nnx.Module):

  def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, head_dim: int, *,
               init_std: float, out_std: float, compute_dtype, impl: str, rngs: nnx.Rngs,
               lora=None, qkv_bias: bool = False):
    normal = jax.nn.initializers.normal
    key = rngs.params
    self.q_proj = nnx.Param(normal(init_std)(key(), (d_model, num_heads, head_dim)),
                            logical_axes=("embed", "q_heads", "head_dim"))
    self.k_proj = nnx.Param(normal(init_std)(key(), (d_model, num_kv_heads, head_dim)),
                            logical_axes=("embed", "kv_heads", "head_dim"))
    self.v_proj = nnx.Param(normal(init_std)(key(), (d_model, num_kv_heads, head_dim)),
                            logical_axes=("embed", "kv_heads", "head_dim"))
    self.o_proj = nnx.Param(normal(out_std)(key(), (num_heads, head_dim, d_model)),
                            logical_axes=("q_heads", "head_dim", "embed"))
    if qkv_bias:
      self.q_bias = nnx.Param(jnp.zeros((num_heads, head_dim)),
                              logical_axes=("q_heads", "head_dim"))
      self.k_bias = nnx.Param(jnp.zeros((num_kv_heads, head_dim)),
                              logical_axes=("kv_heads", "head_dim"))
      self.v_bias = nnx.Param(jnp.zeros((num_kv_heads, head_dim)),
                              logical_axes=("kv_heads", "head_dim"))
    self.compute_dtype = compute_dtype
    self.impl = impl
    attach_loras(self, (("q_proj", 1), ("k_proj", 1), ("v_proj", 1), ("o_proj", 2)), lora, rngs)

  def _project(self, name, equation, x, rng):
    out = project(self, name, equation, x, self.compute_dtype, rng)
    bias = getattr(self, name[0] + "_bias", None) if name != "o_proj" else None
    return out if bias is None else out + bias[...]

  def __call__(self, x, rotary, positions, segment_ids, cache: LayerCache | None = None,
               cache_index=None, rng=None):
    """x [batch, seq, d_model] -> ([batch, seq, d_model] float32, updated cache or None).
    `cache`: a dense LayerCache written at `cache_index`, or a PagedCache (serving)."""
    cd = self.compute_dtype
    cos, sin = rotary
    rngs = [None] * 4 if rng is None else list(jax.random.split(rng, 4))
    q = apply_rotary(self._project("q_proj", "btd,dhk->bthk", x, rngs[0]), cos, sin)
    k = apply_rotary(self._project("k_proj", "btd,dhk->bthk", x, rngs[1]), cos, sin)
    v = self._project("v_proj", "btd,dhk->bthk", x, rngs[2])
    q, k, v = (checkpoint_name(a.astype(cd), n) for a, n in
               ((q, "query_proj"), (k, "key_proj"), (v, "value_proj")))
    if isinstance(cache, PagedCache):  # the serving engine's step (llm/model/paged.py)
      out, cache = paged_attend(self.impl, q, k, v, cache)
      return self._project("o_proj", "bthk,hkd->btd", out, rngs[3]), cache
    k_pos, k_seg = positions, segment_ids
    if cache is not None:
      k, v = (_write_cache(c, x.astype(c.dtype), cache_index) for c, x in ((cache.k, k),
                                                                           (cache.v, v)))
      cache = LayerCache(k, v)
      k_pos = jnp.broadcast_to(jnp.arange(k.shape[1]), k.shape[:2])
      k_seg = jnp.ones(k.shape[:2], segment_ids.dtype)
    mask = attention_mask(positions, k_pos, segment_ids, k_seg)
    out = checkpoint_name(attend(self.impl, q, k.astype(cd), v.astype(cd), mask, segment_ids,
                                 cached=cache is not None), "attn_out")
    return self._project("o_proj", "bthk,hkd->btd", out, rngs[3]), cache

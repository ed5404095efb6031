"""The attention forward pass written in Triton, called through `jax_triton.triton_call`.

GPU only: `pip install -e '.[gpu]'`; triton and jax_triton are imported on first use. A leaf
module: `kernels.flash_attention` dispatches to it, and the Pallas backward there reads the
log-sum-exp this kernel stores, so the Triton forward is differentiable:

    out = flash_attention(q, k, v, segment_ids, causal=True, forward="triton")

The kernel works on the padded [batch, heads, length, head_dim] arrays the shared wrapper
prepares; one program per (query block, batch x head), looping over key blocks up to the
causal limit. Offsets are 64-bit, so large batches do not overflow.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from kernels.attention_reference import MASK_VALUE


@functools.cache
def _kernel():
  """Builds the @triton.jit kernel on first use (importing triton needs a GPU install)."""
  import triton
  import triton.language as tl

  @triton.jit
  def attention_forward(q_ptr, k_ptr, v_ptr, q_seg_ptr, kv_seg_ptr, sm_scale, kv_len,
                        o_ptr, lse_ptr,
                        HEADS: tl.constexpr, KV_HEADS: tl.constexpr, Q_LEN: tl.constexpr,
                        KV_PAD: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr,
                        HAS_SEGMENTS: tl.constexpr, MASK: tl.constexpr):
    block = tl.program_id(0)
    batch_head = tl.program_id(1).to(tl.int64)
    batch = batch_head // HEADS
    kv_head = batch * KV_HEADS + (batch_head % HEADS) // (HEADS // KV_HEADS)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    q_base = batch_head * Q_LEN * HEAD_DIM
    kv_base = kv_head * KV_PAD * HEAD_DIM
    q = tl.load(q_ptr + q_base + rows[:, None] * HEAD_DIM + dims[None, :])
    if HAS_SEGMENTS:
      q_seg = tl.load(q_seg_ptr + batch * Q_LEN + rows)
    scale = sm_scale.to(tl.float32)  # launchers may pass a Python float as fp64
    m = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    end = KV_PAD
    if CAUSAL:  # key blocks after this query block's last row are never visible
      end = tl.minimum((block + 1) * BLOCK_M, KV_PAD)
    for start in range(0, end, BLOCK_N):
      keys = start + cols
      k = tl.load(k_ptr + kv_base + keys[None, :] * HEAD_DIM + dims[:, None])  # [d, bn]
      s = tl.dot(q, k) * scale
      visible = keys[None, :] < kv_len
      if CAUSAL:
        visible = visible & (rows[:, None] >= keys[None, :])
      if HAS_SEGMENTS:
        kv_seg = tl.load(kv_seg_ptr + batch * KV_PAD + keys)
        visible = visible & (q_seg[:, None] == kv_seg[None, :])
      s = tl.where(visible, s, MASK)
      m_new = tl.maximum(m, tl.max(s, 1))
      p = tl.exp(s - m_new[:, None])
      alpha = tl.exp(m - m_new)
      v = tl.load(v_ptr + kv_base + keys[:, None] * HEAD_DIM + dims[None, :])
      acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
      l = l * alpha + tl.sum(p, 1)
      m = m_new
    out = acc / l[:, None]
    tl.store(o_ptr + q_base + rows[:, None] * HEAD_DIM + dims[None, :],
             out.to(o_ptr.dtype.element_ty))
    tl.store(lse_ptr + batch_head * Q_LEN + rows, m + tl.log(l))

  return attention_forward


def triton_forward(st, q, k, v, q_seg, kv_seg):
  """q [b, h, t, d], k/v [b, kv, s, d] (padded) -> out [b, h, t, d], lse [b, h, t] float32."""
  try:
    import jax_triton
  except Exception as e:  # jax_triton raises a plain Exception without a GPU jaxlib
    raise RuntimeError("attention_impl=triton needs a CUDA jaxlib and jax-triton: "
                       "pip install -e '.[gpu]'") from e
  b, h, t, d = q.shape
  kv_heads, s = k.shape[1], k.shape[2]
  blocks = st.blocks
  if st.has_segments:
    segs = (q_seg, kv_seg)
  else:  # the kernel never reads them; pointers still need arrays
    segs = (jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
  # A Python float would reach the kernel as fp64 and turn the running max into fp64.
  return jax_triton.triton_call(
      q, k, v, *segs, np.float32(st.sm_scale), st.kv_len,
      kernel=_kernel(),
      out_shape=[jax.ShapeDtypeStruct(q.shape, q.dtype),
                 jax.ShapeDtypeStruct((b, h, t), jnp.float32)],
      grid=(t // blocks.block_q, b * h),
      num_warps=blocks.num_warps or 4, num_stages=blocks.num_stages or 2,
      HEADS=h, KV_HEADS=kv_heads, Q_LEN=t, KV_PAD=s, HEAD_DIM=d, BLOCK_M=blocks.block_q,
      BLOCK_N=blocks.block_k, CAUSAL=st.causal, HAS_SEGMENTS=st.has_segments, MASK=MASK_VALUE)

"""Flash attention in Pallas: online softmax, causal block skipping, segment ids, grouped queries.

    out = flash_attention(q, k, v, segment_ids, causal=True)   # q [b, t, h, d], k/v [b, s, kv, d]

Forward (FlashAttention-2): one program per (batch, head, query block) loops over key blocks,
keeping the running max and sum in float32, and stores the log-sum-exp for the backward. With
`causal`, the loop stops at the last key block the query block can see, so fully masked blocks
are never loaded. Grouped queries read their shared K/V head through the BlockSpec index map;
K/V are never repeated in memory.

Backward (custom_vjp): delta = rowsum(dO * O) in jnp, then two kernels that recompute the
probabilities from the log-sum-exp: dQ per query block (loop over key blocks), and dK/dV per
key block (loop over the group's query heads and the query blocks at or after it).

Any length: the wrapper pads sequences to whole blocks (padded keys are masked by index,
padded query rows are cut off) and the head dim to a power of two. Inputs may be bfloat16 or
float16; every product accumulates in float32. The kernels are written for Triton lowering on
GPUs and run with `interpret=True` on CPU. TPU compiler parameters are passed, but Mosaic's
block-shape rules for the 1-D statistics (log-sum-exp, segment ids) are untested there, and
K/V of a whole sequence would sit in VMEM.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.attention_reference import MASK_VALUE
from kernels.platform import backend_name, compiler_params
from kernels.triton_attention import triton_forward


@dataclasses.dataclass(frozen=True)
class BlockSizes:
  """Tile sizes: forward query/key blocks, and the backward kernels' query/key blocks."""
  block_q: int
  block_k: int
  block_q_bwd: int
  block_k_bwd: int
  num_warps: int | None = None  # GPU only
  num_stages: int | None = None  # GPU only
  num_warps_bwd: int | None = None  # GPU only; None: as the forward
  num_stages_bwd: int | None = None

  @classmethod
  def for_platform(cls, platform: str, head_dim: int) -> "BlockSizes":
    if platform == "gpu":  # the best of a tile sweep on an H200 at T=4096, causal bf16
      if head_dim <= 64:
        return cls(128, 128, 64, 128, num_warps=4, num_stages=3)
      return cls(128, 64, 64, 64, num_warps=8, num_stages=3, num_warps_bwd=4,
                 num_stages_bwd=2)
    if platform == "tpu":
      return cls(512, 512, 256, 256)
    return cls(128, 128, 128, 128)  # interpret mode: fewer, larger blocks run faster


@dataclasses.dataclass(frozen=True)
class _Static:
  """Everything the kernels are specialised on (hashable, for custom_vjp)."""
  sm_scale: float
  causal: bool
  kv_len: int  # before padding
  has_segments: bool
  blocks: BlockSizes
  interpret: bool
  platform: str
  forward: str  # "pallas", or "triton" (kernels/triton_attention.py)


def _nt(a, b):
  """a @ b.T with float32 accumulation."""
  return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def _nn(a, b):
  return jnp.dot(a, b, preferred_element_type=jnp.float32)


def _tn(a, b):
  """a.T @ b with float32 accumulation."""
  return jnp.dot(a.T, b, preferred_element_type=jnp.float32)


def _scores(st: _Static, q, k, q_start, k_start, q_seg, k_seg):
  """Scaled, masked scores of a [bq, d] query tile against a [bk, d] key tile."""
  s = _nt(q, k) * st.sm_scale
  q_idx = q_start + jax.lax.broadcasted_iota(jnp.int32, s.shape, 0)
  k_idx = k_start + jax.lax.broadcasted_iota(jnp.int32, s.shape, 1)
  mask = k_idx < st.kv_len
  if st.causal:
    mask &= q_idx >= k_idx
  if st.has_segments:
    mask &= q_seg[:, None] == k_seg[None, :]
  return jnp.where(mask, s, MASK_VALUE)


def _split_refs(refs, has_segments: bool, inputs: int):
  """(array refs, q segment ref, kv segment ref, output refs) from a kernel's flat refs."""
  arrays, rest = refs[:inputs], refs[inputs:]
  if has_segments:
    return arrays, rest[0], rest[1], rest[2:]
  return arrays, None, None, rest


def _forward_kernel(*refs, st: _Static):
  (q_ref, k_ref, v_ref), qs_ref, ks_ref, (o_ref, lse_ref) = _split_refs(refs, st.has_segments, 3)
  bq, bk = st.blocks.block_q, st.blocks.block_k
  q_start = pl.program_id(2) * bq
  q = q_ref[...]
  q_seg = qs_ref[...] if st.has_segments else None
  num_k = k_ref.shape[0] // bk
  if st.causal:  # the last key block with an index <= this block's last query
    num_k = jnp.minimum(num_k, jax.lax.div(q_start + bq + bk - 1, bk))

  def body(j, carry):
    m, l, acc = carry
    k_start = pl.multiple_of(j * bk, bk)
    rows = pl.ds(k_start, bk)
    k_seg = ks_ref[rows] if st.has_segments else None
    s = _scores(st, q, k_ref[rows, :], q_start, k_start, q_seg, k_seg)
    m_new = jnp.maximum(m, s.max(axis=1))
    p = jnp.exp(s - m_new[:, None])
    alpha = jnp.exp(m - m_new)
    v = v_ref[rows, :]
    acc = acc * alpha[:, None] + _nn(p.astype(v.dtype), v)
    return m_new, l * alpha + p.sum(axis=1), acc

  init = (jnp.full((bq,), -jnp.inf, jnp.float32), jnp.zeros((bq,), jnp.float32),
          jnp.zeros((bq, q.shape[-1]), jnp.float32))
  m, l, acc = jax.lax.fori_loop(0, num_k, body, init)
  o_ref[...] = (acc / l[:, None]).astype(o_ref.dtype)
  lse_ref[...] = m + jnp.log(l)


def _dq_kernel(*refs, st: _Static):
  (q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref), qs_ref, ks_ref, (dq_ref,) = _split_refs(
      refs, st.has_segments, 6)
  bq, bk = st.blocks.block_q_bwd, st.blocks.block_k_bwd
  q_start = pl.program_id(2) * bq
  q, do = q_ref[...], do_ref[...]
  lse, delta = lse_ref[...], delta_ref[...]
  q_seg = qs_ref[...] if st.has_segments else None
  num_k = k_ref.shape[0] // bk
  if st.causal:
    num_k = jnp.minimum(num_k, jax.lax.div(q_start + bq + bk - 1, bk))

  def body(j, dq):
    k_start = pl.multiple_of(j * bk, bk)
    rows = pl.ds(k_start, bk)
    k, v = k_ref[rows, :], v_ref[rows, :]
    k_seg = ks_ref[rows] if st.has_segments else None
    p = jnp.exp(_scores(st, q, k, q_start, k_start, q_seg, k_seg) - lse[:, None])
    ds = p * (_nt(do, v) - delta[:, None])
    return dq + _nn(ds.astype(k.dtype), k)

  dq = jax.lax.fori_loop(0, num_k, body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = (dq * st.sm_scale).astype(dq_ref.dtype)


def _dkv_kernel(*refs, st: _Static):
  (q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref), qs_ref, ks_ref, (dk_ref, dv_ref) = (
      _split_refs(refs, st.has_segments, 6))
  bq, bk = st.blocks.block_q_bwd, st.blocks.block_k_bwd
  group, q_len = q_ref.shape[0], q_ref.shape[1]
  k_start = pl.program_id(2) * bk
  k, v = k_ref[...], v_ref[...]
  k_seg = ks_ref[...] if st.has_segments else None
  first_q = jax.lax.div(k_start, bq) if st.causal else 0  # earlier queries cannot see this block

  def over_query_blocks(i, carry, head):
    dk, dv = carry
    q_start = pl.multiple_of(i * bq, bq)
    rows = pl.ds(q_start, bq)
    q, do = q_ref[head, rows, :], do_ref[head, rows, :]
    q_seg = qs_ref[rows] if st.has_segments else None
    p = jnp.exp(_scores(st, q, k, q_start, k_start, q_seg, k_seg) - lse_ref[head, rows][:, None])
    dv = dv + _tn(p.astype(do.dtype), do)
    ds = p * (_nt(do, v) - delta_ref[head, rows][:, None])
    return dk + _tn(ds.astype(q.dtype), q), dv

  def over_heads(head, carry):
    return jax.lax.fori_loop(first_q, q_len // bq,
                             functools.partial(over_query_blocks, head=head), carry)

  zeros = jnp.zeros(k.shape, jnp.float32)
  dk, dv = jax.lax.fori_loop(0, group, over_heads, (zeros, zeros))
  dk_ref[...] = (dk * st.sm_scale).astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


_SQ = pl.squeezed


def _call(kernel, st: _Static, grid, in_specs, out_specs, out_shape, args, segs, seg_specs):
  if st.has_segments:
    args, in_specs = args + segs, in_specs + seg_specs
  return pl.pallas_call(
      functools.partial(kernel, st=st), grid=grid, in_specs=in_specs, out_specs=out_specs,
      out_shape=out_shape, interpret=st.interpret,
      compiler_params=None if st.interpret else compiler_params(st.platform, st.blocks, len(grid)),
      name=kernel.__name__.strip("_"))(*args)


def _forward(st: _Static, q, k, v, q_seg, kv_seg):
  """q [b, h, t, d], k/v [b, kv, s, d] (padded) -> out [b, h, t, d], lse [b, h, t] float32."""
  b, h, t, d = q.shape
  s, group, bq = k.shape[2], h // k.shape[1], st.blocks.block_q
  q_map = lambda bi, hi, i: (bi, hi, i, 0)
  kv_map = lambda bi, hi, i: (bi, hi // group, 0, 0)
  return _call(
      _forward_kernel, st, (b, h, t // bq),
      [pl.BlockSpec((_SQ, _SQ, bq, d), q_map), pl.BlockSpec((_SQ, _SQ, s, d), kv_map),
       pl.BlockSpec((_SQ, _SQ, s, d), kv_map)],
      [pl.BlockSpec((_SQ, _SQ, bq, d), q_map),
       pl.BlockSpec((_SQ, _SQ, bq), lambda bi, hi, i: (bi, hi, i))],
      [jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, h, t), jnp.float32)],
      [q, k, v], [q_seg, kv_seg],
      [pl.BlockSpec((_SQ, bq), lambda bi, hi, i: (bi, i)),
       pl.BlockSpec((_SQ, s), lambda bi, hi, i: (bi, 0))])


def _backward(st: _Static, q, k, v, out, lse, d_out, q_seg, kv_seg):
  blocks = st.blocks
  st = dataclasses.replace(st, blocks=dataclasses.replace(
      blocks, num_warps=blocks.num_warps_bwd or blocks.num_warps,
      num_stages=blocks.num_stages_bwd or blocks.num_stages))
  b, h, t, d = q.shape
  kv_heads, s = k.shape[1], k.shape[2]
  group, bq, bk = h // kv_heads, st.blocks.block_q_bwd, st.blocks.block_k_bwd
  delta = jnp.sum(out.astype(jnp.float32) * d_out.astype(jnp.float32), axis=-1)
  row_map = lambda bi, hi, i: (bi, hi, i, 0)
  kv_map = lambda bi, hi, i: (bi, hi // group, 0, 0)
  full_kv = pl.BlockSpec((_SQ, _SQ, s, d), kv_map)
  dq = _call(
      _dq_kernel, st, (b, h, t // bq),
      [pl.BlockSpec((_SQ, _SQ, bq, d), row_map), full_kv, full_kv,
       pl.BlockSpec((_SQ, _SQ, bq, d), row_map),
       pl.BlockSpec((_SQ, _SQ, bq), lambda bi, hi, i: (bi, hi, i)),
       pl.BlockSpec((_SQ, _SQ, bq), lambda bi, hi, i: (bi, hi, i))],
      pl.BlockSpec((_SQ, _SQ, bq, d), row_map), jax.ShapeDtypeStruct(q.shape, q.dtype),
      [q, k, v, d_out, lse, delta], [q_seg, kv_seg],
      [pl.BlockSpec((_SQ, bq), lambda bi, hi, i: (bi, i)),
       pl.BlockSpec((_SQ, s), lambda bi, hi, i: (bi, 0))])
  # dK/dV: one program per (batch, kv head, key block); the group's query heads come whole.
  group_rows = pl.BlockSpec((_SQ, group, t, d), lambda bi, ki, j: (bi, ki, 0, 0))
  group_stats = pl.BlockSpec((_SQ, group, t), lambda bi, ki, j: (bi, ki, 0))
  kv_block = pl.BlockSpec((_SQ, _SQ, bk, d), lambda bi, ki, j: (bi, ki, j, 0))
  dk, dv = _call(
      _dkv_kernel, st, (b, kv_heads, s // bk),
      [group_rows, kv_block, kv_block, group_rows, group_stats, group_stats],
      [kv_block, kv_block],
      [jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)],
      [q, k, v, d_out, lse, delta], [q_seg, kv_seg],
      [pl.BlockSpec((_SQ, t), lambda bi, ki, j: (bi, 0)),
       pl.BlockSpec((_SQ, bk), lambda bi, ki, j: (bi, j))])
  return dq, dk, dv


def _forward_pass(st: _Static, q, k, v, q_seg, kv_seg):
  if st.forward == "triton":
    return triton_forward(st, q, k, v, q_seg, kv_seg)
  return _forward(st, q, k, v, q_seg, kv_seg)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _flash(st, q, k, v, q_seg, kv_seg):
  return _forward_pass(st, q, k, v, q_seg, kv_seg)[0]


def _flash_fwd(st, q, k, v, q_seg, kv_seg):
  out, lse = _forward_pass(st, q, k, v, q_seg, kv_seg)
  return out, (q, k, v, out, lse, q_seg, kv_seg)


def _flash_bwd(st, residuals, d_out):
  q, k, v, out, lse, q_seg, kv_seg = residuals
  dq, dk, dv = _backward(st, q, k, v, out, lse, d_out, q_seg, kv_seg)
  return dq, dk, dv, None, None


_flash.defvjp(_flash_fwd, _flash_bwd)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _fit(block: int, length: int) -> int:
  """The block, or a smaller power of two when the sequence is short."""
  return min(block, max(16, pl.next_power_of_2(length)))


def flash_attention(q, k, v, segment_ids=None, kv_segment_ids=None, *, causal: bool = True,
                    sm_scale: float | None = None, block_sizes: BlockSizes | None = None,
                    interpret: bool | None = None, forward: str = "pallas"):
  """Attention of q [b, t, h, d] over k/v [b, s, kv_heads, d] -> [b, t, h, d] in q's dtype.

  segment_ids [b, t] (and kv_segment_ids [b, s], default segment_ids): a query sees only keys
  of its own segment. causal: a query at index i sees keys at indices <= i (needs t == s).
  interpret: None runs the kernels in interpret mode on CPU and compiled elsewhere.
  forward: "pallas", or "triton" for the Triton forward kernel (GPU; same Pallas backward).
  """
  b, t, h, d = q.shape
  s, kv_heads = k.shape[1], k.shape[2]
  if k.shape != v.shape or k.shape[0] != b or k.shape[3] != d:
    raise ValueError(f"k and v must be [batch, kv_len, kv_heads, {d}], got {k.shape}, {v.shape}")
  if h % kv_heads:
    raise ValueError(f"heads ({h}) must be a multiple of kv_heads ({kv_heads})")
  if causal and t != s:
    raise ValueError(f"causal attention needs q_len == kv_len, got {t} and {s}; "
                     "decode against a cache with the xla implementation")
  if forward not in ("pallas", "triton"):
    raise ValueError(f"forward must be 'pallas' or 'triton', got {forward!r}")
  if kv_segment_ids is None:
    kv_segment_ids = segment_ids
  if (segment_ids is None) != (kv_segment_ids is None):
    raise ValueError("give segment ids for both queries and keys, or for neither")
  platform = backend_name()
  blocks = block_sizes or BlockSizes.for_platform(platform, d)
  blocks = dataclasses.replace(
      blocks, block_q=_fit(blocks.block_q, t), block_k=_fit(blocks.block_k, s),
      block_q_bwd=_fit(blocks.block_q_bwd, t), block_k_bwd=_fit(blocks.block_k_bwd, s))
  t_pad = _round_up(t, max(blocks.block_q, blocks.block_q_bwd))
  s_pad = _round_up(s, max(blocks.block_k, blocks.block_k_bwd))
  d_pad = pl.next_power_of_2(d)
  st = _Static(sm_scale=d ** -0.5 if sm_scale is None else float(sm_scale), causal=causal,
               kv_len=s, has_segments=segment_ids is not None, blocks=blocks,
               interpret=(platform == "cpu") if interpret is None else interpret,
               platform=platform, forward=forward)

  def heads_first(x, length):  # [b, n, heads, d] -> [b, heads, length, d_pad], zero padded
    x = jnp.pad(x, ((0, 0), (0, length - x.shape[1]), (0, 0), (0, d_pad - d)))
    return x.transpose(0, 2, 1, 3)

  q_seg = kv_seg = None
  if st.has_segments:
    q_seg = jnp.pad(segment_ids.astype(jnp.int32), ((0, 0), (0, t_pad - t)), constant_values=-1)
    kv_seg = jnp.pad(kv_segment_ids.astype(jnp.int32), ((0, 0), (0, s_pad - s)))
  out = _flash(st, heads_first(q, t_pad), heads_first(k, s_pad), heads_first(v, s_pad),
               q_seg, kv_seg)
  return out.transpose(0, 2, 1, 3)[:, :t, :, :d]


def attention_flops(batch: int, q_len: int, kv_len: int, heads: int, head_dim: int, *,
                    causal: bool, backward: bool = False) -> float:
  """Matmul FLOPs of attention (2 matmuls forward, 5 with the backward; causal halves them)."""
  forward = 4.0 * batch * heads * q_len * kv_len * head_dim
  if causal:
    forward /= 2
  return forward * (3.5 if backward else 1.0)


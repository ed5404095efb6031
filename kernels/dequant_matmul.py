"""x @ W^T with W stored as packed int4 or int8 codes, dequantized inside the kernel (Pallas).

    W[n, k] = scales[n, k // group] * (code[n, k] - zeros[n, k // group])

Codes are packed along k (llm/quant/pack.py: int4 two per byte, low nibble first). For int4
the kernel never interleaves nibbles: x is split outside into its even and odd columns, and
  x @ W^T = x_even @ W_low^T + x_odd @ W_high^T
where W_low / W_high are the dequantized low / high nibbles. One program per (row block,
column block) loops over the groups; each group's codes are read once, as bytes, and
dequantized in registers, so the weights cross memory at 4 or 8 bits.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.platform import backend_name


def dequantize_reference(packed, scales, zeros, bits: int, group_size: int):
  """W [N, K] float32 from the packed codes (the XLA path: plain jnp)."""
  p = packed.astype(jnp.int32)
  codes = p if bits == 8 else jnp.stack([p & 15, p >> 4], axis=-1).reshape(p.shape[0], -1)
  k = codes.shape[1]
  width = group_size or k
  s = jnp.repeat(scales, width, axis=1, total_repeat_length=k)
  z = jnp.repeat(zeros, width, axis=1, total_repeat_length=k)
  return s * (codes.astype(jnp.float32) - z)


def dequant_matmul_reference(x, packed, scales, zeros, *, bits: int, group_size: int):
  w = dequantize_reference(packed, scales, zeros, bits, group_size)
  return jnp.dot(x.astype(jnp.float32), w.T, precision=jax.lax.Precision.HIGHEST)


def _kernel(*refs, bits: int, width: int, groups: int):
  if bits == 4:
    x_lo_ref, x_hi_ref, packed_ref, scales_ref, zeros_ref, out_ref = refs
  else:
    x_ref, packed_ref, scales_ref, zeros_ref, out_ref = refs
  step = width // 2 if bits == 4 else width

  def body(g, acc):
    cols = pl.ds(pl.multiple_of(g * step, step), step)
    codes = packed_ref[:, cols].astype(jnp.int32)  # [bn, step]
    scale = scales_ref[:, pl.ds(g, 1)]  # [bn, 1]
    zero = zeros_ref[:, pl.ds(g, 1)]
    if bits == 8:
      w = (codes.astype(jnp.float32) - zero) * scale
      return acc + jax.lax.dot_general(x_ref[:, cols].astype(jnp.float32), w,
                                       (((1,), (1,)), ((), ())))
    low = ((codes & 15).astype(jnp.float32) - zero) * scale
    high = ((codes >> 4).astype(jnp.float32) - zero) * scale
    dims = (((1,), (1,)), ((), ()))
    return (acc + jax.lax.dot_general(x_lo_ref[:, cols].astype(jnp.float32), low, dims)
            + jax.lax.dot_general(x_hi_ref[:, cols].astype(jnp.float32), high, dims))

  acc = jnp.zeros(out_ref.shape, jnp.float32)
  out_ref[...] = jax.lax.fori_loop(0, groups, body, acc)


def _pad(a, axis: int, to: int, value=0):
  extra = to - a.shape[axis]
  if extra <= 0:
    return a
  widths = [(0, 0)] * a.ndim
  widths[axis] = (0, extra)
  return jnp.pad(a, widths, constant_values=value)


def _pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("bits", "group_size", "block_m", "block_n",
                                             "interpret"))
def dequant_matmul(x, packed, scales, zeros, *, bits: int, group_size: int,
                   block_m: int = 16, block_n: int = 64, interpret: bool | None = None):
  """x [M, K] @ W^T -> [M, N] float32, W [N, K] given as packed codes [N, K * bits / 8] with
  scales and zeros [N, groups]. bits 4 or 8; group_size 0 is one group per row."""
  if bits not in (4, 8):
    raise ValueError(f"the dequant-matmul kernel takes 4 or 8 bits, got {bits}")
  if interpret is None:
    interpret = backend_name() != "gpu"
  m, k = x.shape
  n = packed.shape[0]
  width = group_size or k
  if width % 32:
    raise ValueError(f"group_size must be a multiple of 32 (or 0 with K % 32 == 0), got "
                     f"{width}")
  groups = -(-k // width)
  k_padded = groups * width  # a narrower last group: zero columns of x add nothing
  m_padded, n_padded = -(-m // block_m) * block_m, -(-n // block_n) * block_n
  x = _pad(_pad(x, 1, k_padded), 0, m_padded)
  per_byte = 8 // bits
  packed = _pad(_pad(packed, 1, k_padded // per_byte), 0, n_padded)
  g_padded = _pow2(groups)
  scales = _pad(_pad(scales.astype(jnp.float32), 1, g_padded), 0, n_padded)
  zeros = _pad(_pad(zeros.astype(jnp.float32), 1, g_padded), 0, n_padded)
  xs = (x[:, 0::2], x[:, 1::2]) if bits == 4 else (x,)
  x_spec = pl.BlockSpec((block_m, xs[0].shape[1]), lambda i, j: (i, 0))
  w_spec = pl.BlockSpec((block_n, packed.shape[1]), lambda i, j: (j, 0))
  g_spec = pl.BlockSpec((block_n, g_padded), lambda i, j: (j, 0))
  out = pl.pallas_call(
      functools.partial(_kernel, bits=bits, width=width, groups=groups),
      grid=(m_padded // block_m, n_padded // block_n),
      in_specs=[x_spec] * len(xs) + [w_spec, g_spec, g_spec],
      out_specs=pl.BlockSpec((block_m, block_n), lambda i, j: (i, j)),
      out_shape=jax.ShapeDtypeStruct((m_padded, n_padded), jnp.float32),
      interpret=interpret,
  )(*xs, packed, scales, zeros)
  return out[:m, :n]

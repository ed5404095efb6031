"""RMSNorm fused into the matmul that follows it, in Pallas.

    y = rms_norm(x) * scale @ w = rsqrt(mean(x^2) + eps) * ((x * scale) @ w)

The row factor rsqrt(mean(x^2) + eps) commutes with the matmul, so one pass over the
contraction dimension accumulates both the sum of squares and (x * scale) @ w, and the
normalized activations never go to memory. One program per (row block, column block); the
product accumulates in float32 whatever the input dtypes.

The backward (custom_vjp) is jnp: it recomputes the norm and lets XLA fuse the elementwise work
around its two matmuls (dW = h^T dy and dh = dy W^T).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.platform import backend_name, compiler_params


@dataclasses.dataclass(frozen=True)
class MatmulBlocks:
  block_m: int
  block_n: int
  block_k: int
  num_warps: int | None = None  # GPU only
  num_stages: int | None = None  # GPU only

  @classmethod
  def for_platform(cls, platform: str) -> "MatmulBlocks":
    if platform == "gpu":
      return cls(64, 128, 64, num_warps=4, num_stages=3)
    if platform == "tpu":
      return cls(256, 512, 512)
    return cls(128, 128, 128)


@dataclasses.dataclass(frozen=True)
class _Static:
  eps: float
  features: int  # the true contraction size (before padding)
  blocks: MatmulBlocks
  interpret: bool
  platform: str
  out_dtype: str


def reference_norm_matmul(x, scale, w, eps: float = 1e-5, out_dtype=jnp.float32):
  """Plain jnp: RMSNorm in float32, the matmul in w's dtype with float32 accumulation."""
  x32 = x.astype(jnp.float32)
  normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps) * scale
  return jnp.dot(normed.astype(w.dtype), w, preferred_element_type=jnp.float32).astype(out_dtype)


def _kernel(x_ref, scale_ref, w_ref, y_ref, *, st: _Static):
  bk = st.blocks.block_k

  def body(i, carry):
    squares, acc = carry
    cols = pl.ds(pl.multiple_of(i * bk, bk), bk)
    x = x_ref[:, cols].astype(jnp.float32)
    w = w_ref[cols, :]
    h = (x * scale_ref[cols][None, :]).astype(w.dtype)
    return squares + jnp.sum(x * x, axis=1), acc + jnp.dot(h, w,
                                                            preferred_element_type=jnp.float32)

  init = (jnp.zeros((x_ref.shape[0],), jnp.float32),
          jnp.zeros((x_ref.shape[0], w_ref.shape[1]), jnp.float32))
  squares, acc = jax.lax.fori_loop(0, x_ref.shape[1] // bk, body, init)
  inv_rms = jax.lax.rsqrt(squares / st.features + st.eps)
  y_ref[...] = (acc * inv_rms[:, None]).astype(y_ref.dtype)


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _forward(st: _Static, x, scale, w):
  """x [m, k], scale [k], w [k, n], all padded to whole blocks -> y [m, n]."""
  m, k = x.shape
  n = w.shape[1]
  bm, bn = st.blocks.block_m, st.blocks.block_n
  grid = (m // bm, n // bn)
  return pl.pallas_call(
      functools.partial(_kernel, st=st), grid=grid,
      in_specs=[pl.BlockSpec((bm, k), lambda i, j: (i, 0)),
                pl.BlockSpec((k,), lambda i, j: (0,)),
                pl.BlockSpec((k, bn), lambda i, j: (0, j))],
      out_specs=pl.BlockSpec((bm, bn), lambda i, j: (i, j)),
      out_shape=jax.ShapeDtypeStruct((m, n), jnp.dtype(st.out_dtype)),
      interpret=st.interpret,
      compiler_params=None if st.interpret else compiler_params(st.platform, st.blocks, 2),
      name="norm_matmul")(x, scale, w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _norm_matmul(st, x, scale, w):
  return _forward(st, x, scale, w)


def _norm_matmul_fwd(st, x, scale, w):
  return _forward(st, x, scale, w), (x, scale, w)


def _norm_matmul_bwd(st, residuals, dy):
  x, scale, w = residuals
  x32 = x.astype(jnp.float32)
  inv_rms = jax.lax.rsqrt(jnp.sum(x32 * x32, axis=-1, keepdims=True) / st.features + st.eps)
  normed = x32 * inv_rms
  h = (normed * scale).astype(w.dtype)
  dy = dy.astype(w.dtype)
  dw = jnp.dot(h.T, dy, preferred_element_type=jnp.float32)
  dh = jnp.dot(dy, w.T, preferred_element_type=jnp.float32)
  dscale = jnp.sum(dh * normed, axis=0)
  dnormed = dh * scale
  # d/dx of x * rsqrt(mean(x^2)): the projection removes the component along x.
  dx = inv_rms * (dnormed - normed * jnp.sum(dnormed * normed, axis=-1, keepdims=True)
                  / st.features)
  return dx.astype(x.dtype), dscale.astype(scale.dtype), dw.astype(w.dtype)


_norm_matmul.defvjp(_norm_matmul_fwd, _norm_matmul_bwd)


def _fit(block: int, size: int) -> int:
  return min(block, max(16, pl.next_power_of_2(size)))


def fused_norm_matmul(x, scale, w, *, eps: float = 1e-5, out_dtype=jnp.float32,
                      blocks: MatmulBlocks | None = None, interpret: bool | None = None):
  """rms_norm(x) * scale @ w for x [..., k], scale [k], w [k, n] -> [..., n] in out_dtype.

  Differentiable in x, scale and w. interpret: None runs in interpret mode on CPU.
  """
  k, n = w.shape
  if x.shape[-1] != k or scale.shape != (k,):
    raise ValueError(f"x [..., {k}] and scale [{k}] must match w [{k}, {n}]; got x {x.shape}, "
                     f"scale {scale.shape}")
  platform = backend_name()
  blocks = blocks or MatmulBlocks.for_platform(platform)
  lead = x.shape[:-1]
  rows = x.reshape(-1, k)
  m = rows.shape[0]
  blocks = dataclasses.replace(blocks, block_m=_fit(blocks.block_m, m),
                               block_n=_fit(blocks.block_n, n), block_k=_fit(blocks.block_k, k))
  m_pad, n_pad = _round_up(m, blocks.block_m), _round_up(n, blocks.block_n)
  k_pad = _round_up(k, blocks.block_k)
  st = _Static(eps=float(eps), features=k, blocks=blocks,
               interpret=(platform == "cpu") if interpret is None else interpret,
               platform=platform, out_dtype=jnp.dtype(out_dtype).name)
  # Zero padding adds nothing to the sum of squares or the product; the mean divides by k.
  y = _norm_matmul(st, jnp.pad(rows, ((0, m_pad - m), (0, k_pad - k))),
                   jnp.pad(scale, (0, k_pad - k)), jnp.pad(w, ((0, k_pad - k), (0, n_pad - n))))
  return y[:m, :n].reshape(*lead, n)

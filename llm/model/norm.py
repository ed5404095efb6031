"""RMSNorm (Zhang & Sennrich, 2019), computed in float32."""

import jax
import jax.numpy as jnp
from flax import nnx


class RMSNorm(nnx.Module):
  """y = x / rms(x) * scale, with the statistics in float32."""

  def __init__(self, dim: int, eps: float = 1e-5):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32), logical_axes=("norm",))
    self.eps = eps

  def __call__(self, x):
    x32 = x.astype(jnp.float32)
    inv_rms = jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return x32 * inv_rms * self.scale[...]

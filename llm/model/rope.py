"""Rotary position embeddings (Su et al., 2021) with context-extension scalings.

Scalings: none; linear (position interpolation, Chen et al. 2023); ntk (NTK-aware base change);
yarn (Peng et al. 2023: per-frequency ramp plus attention temperature); llama3 (Meta's
wavelength-banded interpolation). Rotation uses the half-split layout of HF Llama.
"""

import math

import jax.numpy as jnp
import numpy as np

SCALINGS = ("none", "linear", "ntk", "yarn", "llama3")  # what inverse_frequencies dispatches on


def inverse_frequencies(head_dim: int, rope) -> tuple[np.ndarray, float]:
  """Returns (inv_freq [head_dim // 2], attention_scale) for the config's RoPE scaling."""
  exponents = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
  inv_freq = 1.0 / rope.theta ** exponents
  scaling, factor = rope.scaling, rope.factor
  if scaling == "none":
    return inv_freq, 1.0
  if scaling == "linear":
    return inv_freq / factor, 1.0
  if scaling == "ntk":
    theta = rope.theta * factor ** (head_dim / (head_dim - 2))
    return 1.0 / theta ** exponents, 1.0
  if scaling == "llama3":
    return _llama3(inv_freq, rope), 1.0
  if scaling == "yarn":
    return _yarn(inv_freq, head_dim, rope), 0.1 * math.log(factor) + 1.0
  raise ValueError(f"unknown RoPE scaling {scaling!r}")


def _llama3(inv_freq, rope):
  low_wavelen = rope.original_max_seq_len / rope.low_freq_factor
  high_wavelen = rope.original_max_seq_len / rope.high_freq_factor
  wavelen = 2 * math.pi / inv_freq
  smooth = (rope.original_max_seq_len / wavelen - rope.low_freq_factor) / (
      rope.high_freq_factor - rope.low_freq_factor)
  blended = (1 - smooth) * inv_freq / rope.factor + smooth * inv_freq
  out = np.where(wavelen > low_wavelen, inv_freq / rope.factor, blended)
  return np.where(wavelen < high_wavelen, inv_freq, out)


def _yarn(inv_freq, head_dim, rope):
  def correction_dim(rotations):
    return (head_dim * math.log(rope.original_max_seq_len / (rotations * 2 * math.pi))
            / (2 * math.log(rope.theta)))
  low = max(math.floor(correction_dim(rope.beta_fast)), 0)
  high = min(math.ceil(correction_dim(rope.beta_slow)), head_dim - 1)
  if low == high:
    high += 0.001
  ramp = np.clip((np.arange(head_dim // 2) - low) / (high - low), 0.0, 1.0)
  keep = 1.0 - ramp  # 1 = high frequency: extrapolate unchanged; 0 = interpolate
  return inv_freq / rope.factor * (1 - keep) + inv_freq * keep


def rotary_tables(positions, inv_freq, attention_scale: float):
  """positions [batch, seq] -> (cos, sin), each [batch, seq, 1, head_dim], float32."""
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)
  angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
  return jnp.cos(angles) * attention_scale, jnp.sin(angles) * attention_scale


def apply_rotary(x, cos, sin):
  """Rotates x [batch, seq, heads, head_dim] by the tables; returns float32."""
  x = x.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos + rotated * sin

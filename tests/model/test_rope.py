"""RoPE: scores depend only on relative offset (acceptance d); scalings match their formulas."""

import math

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from llm.model.rope import apply_rotary, inverse_frequencies, rotary_tables


def rope_config(scaling="none", factor=1.0, original=64):
  return ConfigDict(dict(theta=10000.0, scaling=scaling, factor=factor,
                         original_max_seq_len=original, low_freq_factor=1.0,
                         high_freq_factor=4.0, beta_fast=32.0, beta_slow=1.0))


def rotated(vector, position, inv_freq, scale=1.0):
  cos, sin = rotary_tables(np.array([[position]]), inv_freq, scale)
  return np.asarray(apply_rotary(vector[None, None, None, :], cos, sin))[0, 0, 0]


@pytest.mark.parametrize("scaling", ["none", "linear", "ntk", "yarn", "llama3"])
def test_scores_depend_only_on_relative_offset(scaling):
  rng = np.random.default_rng(0)
  q, k = rng.normal(size=64).astype(np.float32), rng.normal(size=64).astype(np.float32)
  inv_freq, scale = inverse_frequencies(64, rope_config(scaling, factor=4.0))
  scores = [rotated(q, m + 3, inv_freq, scale) @ rotated(k, m, inv_freq, scale)
            for m in (0, 5, 37, 200)]
  np.testing.assert_allclose(scores, scores[0], rtol=1e-4)
  other = rotated(q, 10, inv_freq, scale) @ rotated(k, 0, inv_freq, scale)
  assert not np.isclose(other, scores[0], rtol=1e-3)


def test_rotation_is_the_complex_product():
  """Half-split layout: pair (x_i, x_{i+d/2}) is multiplied by exp(i * pos * freq_i)."""
  x = np.random.default_rng(1).normal(size=8).astype(np.float32)
  inv_freq, _ = inverse_frequencies(8, rope_config())
  got = rotated(x, 3, inv_freq)
  z = (x[:4] + 1j * x[4:]) * np.exp(1j * 3 * inv_freq)
  np.testing.assert_allclose(got, np.concatenate([z.real, z.imag]), atol=1e-5)


def test_linear_scaling_is_position_interpolation():
  base, _ = inverse_frequencies(16, rope_config())
  scaled, _ = inverse_frequencies(16, rope_config("linear", factor=4.0))
  np.testing.assert_allclose(scaled, base / 4.0)


def test_ntk_scaling_changes_the_base():
  scaled, _ = inverse_frequencies(16, rope_config("ntk", factor=4.0))
  theta = 10000.0 * 4.0 ** (16 / 14)
  np.testing.assert_allclose(scaled, [theta ** (-i / 16) for i in range(0, 16, 2)])


def test_llama3_scaling_bands():
  """High frequencies untouched, low frequencies divided by the factor, smooth in between."""
  cfg = rope_config("llama3", factor=8.0, original=8192)
  cfg.theta = 500000.0
  base = 1.0 / 500000.0 ** (np.arange(0, 128, 2) / 128)
  got, _ = inverse_frequencies(128, cfg)
  for b, g in zip(base, got):
    wavelen = 2 * math.pi / b
    if wavelen < 8192 / 4.0:
      assert g == pytest.approx(b)
    elif wavelen > 8192 / 1.0:
      assert g == pytest.approx(b / 8.0)
    else:
      smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0)
      assert g == pytest.approx((1 - smooth) * b / 8.0 + smooth * b)


def test_yarn_scaling_interpolates_low_frequencies_and_sets_temperature():
  base, _ = inverse_frequencies(64, rope_config())
  got, scale = inverse_frequencies(64, rope_config("yarn", factor=4.0, original=64))
  assert scale == pytest.approx(0.1 * math.log(4.0) + 1.0)
  assert got[0] == pytest.approx(base[0])            # fastest rotation kept
  assert got[-1] == pytest.approx(base[-1] / 4.0)    # slowest interpolated
  assert np.all(got <= base + 1e-12) and np.all(got >= base / 4.0 - 1e-12)


def test_tables_are_float32():
  cos, sin = rotary_tables(jax.numpy.zeros((1, 3), int), (1.0, 0.5), 1.0)
  assert cos.dtype == sin.dtype == np.float32 and cos.shape == (1, 3, 1, 4)

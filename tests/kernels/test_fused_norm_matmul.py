"""RMSNorm fused into a matmul (Pallas, interpret mode) against the unfused jnp reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.fused_norm_matmul import MatmulBlocks, fused_norm_matmul, reference_norm_matmul

SMALL = MatmulBlocks(16, 16, 16)


def _inputs(seed, lead, k, n, dtype):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=lead + (k,)) * 3, dtype)
  scale = jnp.asarray(1 + 0.1 * rng.normal(size=(k,)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, n)) / np.sqrt(k), dtype)
  cotangent = jnp.asarray(rng.normal(size=lead + (n,)), jnp.float32)
  return x, scale, w, cotangent


def _value_and_grads(fn, x, scale, w, cotangent):
  out, vjp = jax.vjp(fn, x, scale, w)
  return out, vjp(cotangent)


def _max_diff(a, b):
  return float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))


@pytest.mark.parametrize("lead,k,n", [((2, 20), 48, 40), ((7,), 24, 100), ((3, 5), 64, 64)])
def test_matches_reference_in_float32(lead, k, n):
  # None of these sizes is a whole number of 16-blocks in every dimension.
  x, scale, w, ct = _inputs(k, lead, k, n, jnp.float32)
  ours = _value_and_grads(lambda x, s, w: fused_norm_matmul(x, s, w, blocks=SMALL), x, scale, w, ct)
  ref = _value_and_grads(reference_norm_matmul, x, scale, w, ct)
  assert ours[0].shape == lead + (n,)
  assert _max_diff(ours[0], ref[0]) <= 2e-5
  for name, got, want in zip(("x", "scale", "w"), ours[1], ref[1]):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert _max_diff(got, want) <= 5e-5, f"d{name}"


def test_bfloat16_within_bfloat16_rounding():
  x, scale, w, ct = _inputs(1, (4, 16), 64, 48, jnp.bfloat16)
  ours = _value_and_grads(lambda x, s, w: fused_norm_matmul(x, s, w, blocks=SMALL), x, scale, w, ct)
  ref = _value_and_grads(reference_norm_matmul, x, scale, w, ct)
  eps = float(jnp.finfo(jnp.bfloat16).eps)
  assert _max_diff(ours[0], ref[0]) <= 4 * eps * float(jnp.max(jnp.abs(ref[0])))
  for got, want in zip(ours[1], ref[1]):
    assert _max_diff(got, want) <= 4 * eps * float(jnp.max(jnp.abs(want.astype(jnp.float32))))


def test_shape_mismatch_names_the_shapes():
  x, scale, w, _ = _inputs(0, (2,), 8, 4, jnp.float32)
  with pytest.raises(ValueError, match="must match w"):
    fused_norm_matmul(x[:, :6], scale, w)

"""The Pallas flash attention (interpret mode) against the plain jnp reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.attention_reference import reference_attention
from kernels.flash_attention import BlockSizes, attention_flops, flash_attention

SMALL = BlockSizes(16, 16, 16, 16)  # several blocks per sequence at these lengths


def _inputs(seed, batch, q_len, kv_len, heads, kv_heads, head_dim, dtype=jnp.float32):
  rng = np.random.default_rng(seed)
  q = jnp.asarray(rng.normal(size=(batch, q_len, heads, head_dim)), dtype)
  k = jnp.asarray(rng.normal(size=(batch, kv_len, kv_heads, head_dim)), dtype)
  v = jnp.asarray(rng.normal(size=(batch, kv_len, kv_heads, head_dim)), dtype)
  cotangent = jnp.asarray(rng.normal(size=(batch, q_len, heads, head_dim)), jnp.float32)
  return q, k, v, cotangent


def _packed_segments(seed, batch, length, documents=3):
  """Sorted ids: contiguous documents of random lengths, as packing makes them."""
  rng = np.random.default_rng(seed)
  return jnp.asarray(np.sort(rng.integers(0, documents, size=(batch, length)), axis=1), jnp.int32)


def _value_and_grads(fn, q, k, v, cotangent):
  out, vjp = jax.vjp(fn, q, k, v)
  return out, vjp(cotangent.astype(out.dtype))


def _max_diff(a, b):
  return float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32))))


@pytest.mark.parametrize("kv_heads", [8, 4, 2, 1])  # group sizes 1, 2, 4, 8
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("segments", [True, False])
def test_matches_reference_in_float32(kv_heads, causal, segments):
  # 40 is not a multiple of the 16-row blocks: the wrapper pads and masks.
  q, k, v, ct = _inputs(kv_heads, 2, 40, 40, 8, kv_heads, 16)
  seg = _packed_segments(kv_heads, 2, 40) if segments else None
  ours = _value_and_grads(
      lambda q, k, v: flash_attention(q, k, v, seg, causal=causal, block_sizes=SMALL), q, k, v, ct)
  ref = _value_and_grads(lambda q, k, v: reference_attention(q, k, v, seg, causal=causal),
                         q, k, v, ct)
  assert _max_diff(ours[0], ref[0]) <= 2e-5
  for name, got, want in zip("qkv", ours[1], ref[1]):
    assert got.shape == want.shape
    assert _max_diff(got, want) <= 5e-5, f"d{name}"


def test_cross_attention_with_other_lengths_and_segment_ids():
  q, k, v, ct = _inputs(7, 1, 24, 50, 4, 2, 32)
  q_seg = jnp.asarray([[0] * 10 + [1] * 14], jnp.int32)
  kv_seg = jnp.asarray([[0] * 30 + [1] * 20], jnp.int32)
  ours = _value_and_grads(lambda q, k, v: flash_attention(
      q, k, v, q_seg, kv_seg, causal=False, block_sizes=SMALL), q, k, v, ct)
  ref = _value_and_grads(lambda q, k, v: reference_attention(
      q, k, v, q_seg, kv_seg, causal=False), q, k, v, ct)
  assert _max_diff(ours[0], ref[0]) <= 2e-5
  assert max(_max_diff(a, b) for a, b in zip(ours[1], ref[1])) <= 5e-5


def test_head_dim_that_is_not_a_power_of_two():
  q, k, v, ct = _inputs(3, 1, 32, 32, 2, 1, 24)
  ours = _value_and_grads(lambda q, k, v: flash_attention(q, k, v, block_sizes=SMALL), q, k, v, ct)
  ref = _value_and_grads(lambda q, k, v: reference_attention(q, k, v), q, k, v, ct)
  assert _max_diff(ours[0], ref[0]) <= 2e-5
  assert max(_max_diff(a, b) for a, b in zip(ours[1], ref[1])) <= 5e-5


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_inputs_accumulate_in_float32(dtype):
  """bf16/fp16 inputs: within the rounding of the inputs' own precision (outputs ~N(0, 1/n))."""
  q, k, v, ct = _inputs(5, 2, 64, 64, 4, 2, 32, dtype)
  seg = _packed_segments(5, 2, 64)
  ours = _value_and_grads(lambda q, k, v: flash_attention(q, k, v, seg, block_sizes=SMALL),
                          q, k, v, ct)
  ref = _value_and_grads(lambda q, k, v: reference_attention(q, k, v, seg), q, k, v, ct)
  assert ours[0].dtype == dtype and all(g.dtype == dtype for g in ours[1])
  eps = float(jnp.finfo(dtype).eps)  # 2^-7 for bf16, 2^-10 for fp16
  assert _max_diff(ours[0], ref[0]) <= 4 * eps
  for got, want in zip(ours[1], ref[1]):
    assert _max_diff(got, want) <= 8 * eps * max(1.0, float(jnp.max(jnp.abs(want))))


def test_causal_loop_never_loads_key_blocks_after_the_query_block():
  """A NaN value in the last key block poisons exactly the rows whose loop loads that block."""
  q, k, v, _ = _inputs(11, 1, 64, 64, 2, 2, 16)
  v = v.at[:, 63].set(jnp.nan)
  out = flash_attention(q, k, v, block_sizes=SMALL)
  ref = reference_attention(q, k, v.at[:, 63].set(0.0))
  assert bool(jnp.all(jnp.isfinite(out[:, :48])))  # rows 0-47 stop before keys 48-63
  assert _max_diff(out[:, :48], ref[:, :48]) <= 2e-5
  assert bool(jnp.all(jnp.isnan(out[:, 63])))


def test_rejects_bad_shapes_with_the_reason():
  q, k, v, _ = _inputs(0, 1, 16, 16, 6, 4, 8)
  with pytest.raises(ValueError, match="multiple of kv_heads"):
    flash_attention(q, k, v)
  q, k, v, _ = _inputs(0, 1, 16, 24, 4, 2, 8)
  with pytest.raises(ValueError, match="q_len == kv_len"):
    flash_attention(q, k, v, causal=True)


def test_flop_count_formula():
  # QK^T and PV: 2 matmuls of 2*t*s*d each; causal halves; backward adds 2.5x.
  assert attention_flops(1, 8, 8, 1, 4, causal=False) == 4 * 8 * 8 * 4
  assert attention_flops(2, 8, 8, 3, 4, causal=True, backward=True) == 2 * 3 * 4 * 8 * 8 * 4 / 2 * 3.5

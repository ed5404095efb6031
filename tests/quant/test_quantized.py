"""A QuantizedWeight read inside the model equals the dequantized numpy weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.quant.grid import Grid, dequantize_groups, round_to_nearest
from llm.quant.quantized import as_matrix, from_integers


@pytest.mark.parametrize("bits,group", [(4, 8), (8, 0), (3, 16), (2, 12)])
def test_dequantized_weight_equals_numpy_for_any_weight_shape(bits, group):
  rng = np.random.default_rng(bits)
  weight = rng.normal(size=(16, 3, 8)).astype(np.float32)  # like q_proj: [d, heads, head_dim]
  matrix = as_matrix(weight, 1)  # [24, 16]
  q, scales, zeros = round_to_nearest(Grid(bits, group, False), matrix)
  expected = dequantize_groups(q, scales, zeros, group).T.reshape(weight.shape)
  packed = from_integers(q, scales, zeros, bits, group, (16,), (3, 8))
  assert packed.shape == weight.shape
  np.testing.assert_allclose(np.asarray(packed[...]), expected, atol=1e-6)
  stacked = jax.tree.map(lambda a: jnp.stack([a, a]), packed)  # a scanned model's layers
  assert stacked.shape == (2,) + weight.shape
  sliced = jax.lax.scan(lambda c, w: (c, w[...]), 0, stacked)[1]
  np.testing.assert_allclose(np.asarray(sliced[1]), expected, atol=1e-6)


@pytest.mark.parametrize("bits,group", [(4, 0), (8, 32)])
def test_the_model_gives_the_same_logits_through_the_dequant_matmul_kernel(bits, group):
  from flax import nnx
  from llm.model.factory import build_model
  from llm.quant.model_quant import QuantSettings, quantize_model
  from llm.quant.quantized import matmul_impl
  from tests.conftest import micro_config
  config = micro_config(scan_layers=False)
  model = build_model(config.model, seed=2)
  params, _ = quantize_model(model, None, QuantSettings("rtn", Grid(bits, group, False)))
  quantized = nnx.merge(nnx.split(model, nnx.Param)[0], params)
  tokens = np.random.default_rng(0).integers(0, 64, (2, 16))
  with matmul_impl("xla"):
    xla = np.asarray(quantized(tokens))
  with matmul_impl("kernel"):  # interpreted on CPU
    kernel = np.asarray(quantized(tokens))
  np.testing.assert_allclose(kernel, xla, atol=2e-5)
  with matmul_impl("xla"):
    dense = nnx.merge(nnx.split(model, nnx.Param)[0], jax.tree.map(
        lambda w: w[...], params, is_leaf=lambda w: hasattr(w, "contract")))
    np.testing.assert_allclose(np.asarray(dense(tokens)), xla, atol=2e-5)


def test_memory_bytes_count_codes_scales_and_zeros():
  from llm.quant.quantized import memory_bytes
  q = np.zeros((64, 256), np.uint8)  # [out, in]: two groups of 128 per row
  scales = zeros = np.ones((64, 2), np.float32)
  params = {"w": from_integers(q, scales, zeros, 4, 128, (256,), (64,)),
            "norm": np.ones(64, np.float32)}
  sizes = memory_bytes(params)
  assert sizes["linear_held"] == 64 * 256 // 2 + 2 * 64 * 2 * 4  # 4 bits + float32 scale, zero
  assert sizes["linear_float32"] == 4 * 64 * 256 and sizes["held"] == sizes["linear_held"] + 256
  assert sizes["bfloat16"] == 2 * (64 * 256 + 64)

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

"""The Pallas dequant-matmul kernel (interpret mode) against the XLA path the model uses."""

import jax.numpy as jnp
import numpy as np
import pytest

from kernels.dequant_matmul import dequant_matmul, dequant_matmul_reference
from llm.quant.grid import Grid, round_to_nearest
from llm.quant.pack import pack
from llm.quant.quantized import from_integers


@pytest.mark.parametrize("bits,group,k", [(4, 32, 128), (8, 64, 128), (4, 0, 96),
                                          (4, 64, 96)])
def test_kernel_equals_the_models_dequantized_matmul(bits, group, k):
  rng = np.random.default_rng(bits + group + k)
  w = rng.normal(0, 0.1, (40, k))
  q, scales, zeros = round_to_nearest(Grid(bits, group, False), w)
  x = rng.normal(size=(5, k)).astype(np.float32)
  packed = jnp.asarray(pack(q, bits))
  got = dequant_matmul(jnp.asarray(x), packed, jnp.asarray(scales), jnp.asarray(zeros),
                       bits=bits, group_size=group)
  reference = dequant_matmul_reference(jnp.asarray(x), packed, jnp.asarray(scales),
                                       jnp.asarray(zeros), bits=bits, group_size=group)
  # the model's own path: a QuantizedWeight read as weight[...] ([in, out]), then x @ W
  model_weight = from_integers(q, scales, zeros, bits, group, (k,), (40,))[...]
  np.testing.assert_allclose(np.asarray(reference), x @ np.asarray(model_weight), atol=1e-4)
  np.testing.assert_allclose(np.asarray(got), np.asarray(reference), atol=1e-4)

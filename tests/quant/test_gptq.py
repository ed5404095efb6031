"""GPTQ against a deliberately naive column-by-column implementation, RTN, and packing."""

import numpy as np
import pytest

from llm.quant.gptq import GPTQSettings, gptq, hessian
from llm.quant.grid import Grid, dequantize, dequantize_groups, fit, quantize, round_to_nearest
from llm.quant.pack import pack, unpack


def naive_gptq(w, h, grid: Grid, damp: float):
  """One column at a time with the explicit inverse Hessian, updated by removing each
  quantized column (the OBS step); no Cholesky, no blocks."""
  w, h = w.astype(np.float64).copy(), h.astype(np.float64).copy()
  cols = w.shape[1]
  h += damp * np.mean(np.diag(h)) * np.eye(cols)
  h_inv = np.linalg.inv(h)
  width = grid.group_size or cols
  out = np.zeros_like(w)
  for j in range(cols):
    if j % width == 0:
      scale, zero = fit(grid, w[:, j:j + width])
    q = dequantize(quantize(w[:, j:j + 1], scale, zero, grid.max_q), scale, zero)[:, 0]
    out[:, j] = q
    error = (w[:, j] - q) / h_inv[j, j]
    w[:, j + 1:] -= np.outer(error, h_inv[j, j + 1:])
    h_inv -= np.outer(h_inv[:, j], h_inv[j, :]) / h_inv[j, j]
  return out


def _layer(rows=24, cols=64, tokens=256, seed=0):
  rng = np.random.default_rng(seed)
  mix = rng.normal(size=(cols, cols)) / np.sqrt(cols)  # correlated inputs, as in a real model
  x = rng.normal(size=(tokens, cols)) @ mix + 0.3 * rng.normal(size=cols)
  return rng.normal(0, 0.05, size=(rows, cols)), x


@pytest.mark.parametrize("grid", [Grid(4, 0, False), Grid(3, 16, True), Grid(2, 32, False)])
def test_gptq_equals_the_naive_column_by_column_algorithm(grid):
  w, x = _layer()
  h = hessian(x)
  q, scales, zeros = gptq(w, h, GPTQSettings(grid, damp=0.01, block_size=32))
  ours = dequantize_groups(q, scales, zeros, grid.group_size)
  np.testing.assert_allclose(ours, naive_gptq(w, h, grid, 0.01), atol=1e-4)


def test_gptq_output_error_is_below_round_to_nearest():
  w, x = _layer(seed=1)
  for grid in (Grid(4, 0, False), Grid(3, 32, False), Grid(4, 16, True)):
    rtn = dequantize_groups(*round_to_nearest(grid, w), grid.group_size)
    for act_order in (False, True):
      q, s, z = gptq(w, hessian(x), GPTQSettings(grid, act_order=act_order))
      ours = dequantize_groups(q, s, z, grid.group_size)
      error = np.linalg.norm(x @ (w - ours).T)
      assert error < np.linalg.norm(x @ (w - rtn).T), (grid, act_order)


def test_act_order_with_static_groups_needs_no_permutation_at_inference():
  w, x = _layer(seed=2)
  grid = Grid(4, 16, False)
  q, scales, zeros = gptq(w, hessian(x), GPTQSettings(grid, act_order=True))
  assert q.shape == w.shape and scales.shape == (24, 4)
  # every integer decodes with its own column's group, in the original column order
  dense = dequantize_groups(q, scales, zeros, 16)
  for column in (0, 17, 63):
    group = column // 16
    np.testing.assert_array_equal(
        dense[:, column], scales[:, group] * (q[:, column] - zeros[:, group]))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_pack_unpack_round_trips_exactly(bits):
  values = np.random.default_rng(bits).integers(0, 2 ** bits, size=(5, 48))
  packed = pack(values, bits)
  assert packed.dtype == np.uint8 and packed.shape == (5, 48 * bits // 8)
  np.testing.assert_array_equal(unpack(packed, bits, 48), values)
  with pytest.raises(ValueError, match="multiple of 8"):
    pack(values[:, :5], bits)


def test_a_narrower_last_group_is_quantized_like_the_others():
  w, x = _layer(cols=40, seed=3)
  grid = Grid(4, 16, False)  # groups of 16, 16 and 8
  q, scales, zeros = gptq(w, hessian(x), GPTQSettings(grid, block_size=32))
  assert scales.shape == (24, 3)
  ours = dequantize_groups(q, scales, zeros, 16)
  np.testing.assert_allclose(ours, naive_gptq(w, hessian(x), grid, 0.01), atol=1e-4)


def test_llama_cpp_blocks_hold_our_codes_and_read_back_as_gguf_reads_them():
  import gguf
  from llm.quant.ggml import from_blocks, to_blocks
  w, x = _layer(cols=64, seed=5)
  for kind, qtype in (("q4_0", gguf.GGMLQuantizationType.Q4_0),
                      ("q8_0", gguf.GGMLQuantizationType.Q8_0)):
    grid = Grid.llama_cpp(kind)
    q, scales, zeros = gptq(w, hessian(x), GPTQSettings(grid))
    ours = dequantize_groups(q, scales, zeros, 32)
    blocks = to_blocks(q, scales, kind)
    np.testing.assert_allclose(gguf.quants.dequantize(blocks, qtype), ours, atol=1e-7)
    codes, read_scales = from_blocks(blocks, kind)
    np.testing.assert_array_equal(codes, q)
    np.testing.assert_array_equal(read_scales, scales)
  with pytest.raises(ValueError, match="groups of 32"):
    Grid(4, 64, True, "q4_0")

"""A model quantized on llama.cpp's Q4_0 or Q8_0 grid, written as a GGUF file with its own
codes (so llama.cpp users get GPTQ-quality weights).

The export reuses llm/interop's tensor naming and layout: the codes and the scales of each
quantized weight are laid out as float arrays in our parameter layout, sent through the same
conversion as float weights (transposes, llama.cpp's query/key row order), and packed into
blocks afterwards. Unquantized weights (embedding, output head, norms) stay float32.
"""

import math

import jax
import numpy as np

from llm.interop.gguf_export import RawTensor, gguf_tensors, save_gguf
from llm.quant.ggml import BLOCK, to_blocks
from llm.quant.pack import unpack
from llm.quant.quantized import QuantizedWeight


def _our_layout(w: QuantizedWeight, per_row: np.ndarray) -> np.ndarray:
  """[..., out, in] values -> the weight's own layout [..., *in_shape, *out_shape]."""
  lead = per_row.shape[:-2]
  return np.swapaxes(per_row, -1, -2).reshape(*lead, *w.in_shape, *w.out_shape)


def _views(params: dict, kind: str):
  """Three parameter trees: codes, expanded scales, and 1 where a weight is quantized."""
  zero = {"q4_0": 8.0, "q8_0": 128.0}[kind]

  def codes(x):
    if not isinstance(x, QuantizedWeight):
      return np.asarray(x, np.float32)
    if x.group_size != BLOCK or not np.all(np.asarray(x.zeros) == zero):
      raise ValueError(f"a weight quantized with groups of {x.group_size} is not on the "
                       f"{kind} grid: quantize with Grid.llama_cpp({kind!r})")
    n_in = math.prod(x.in_shape)
    return _our_layout(x, unpack(np.asarray(x.packed), x.bits, n_in).astype(np.float32))

  def scales(x):
    if not isinstance(x, QuantizedWeight):
      return np.asarray(x, np.float32)
    return _our_layout(x, np.repeat(np.asarray(x.scales, np.float32), BLOCK, axis=-1))

  def flags(x):
    return np.full(np.shape(x), float(isinstance(x, QuantizedWeight)), np.float32)

  is_leaf = lambda x: isinstance(x, QuantizedWeight)  # noqa: E731
  return [jax.tree.map(f, params, is_leaf=is_leaf) for f in (codes, scales, flags)]


def save_quantized_gguf(path: str, model_config, params: dict, tokenizer, kind: str = "q4_0",
                        name: str = "llm") -> str:
  """Writes the quantized model `params` (QuantizedWeight leaves on `kind`'s grid) to path."""
  codes, scales, flags = (gguf_tensors(model_config, tree) for tree in _views(params, kind))
  tensors = {}
  for tensor_name, values in codes.items():
    if flags[tensor_name].size and flags[tensor_name].min() == 1.0:
      rows = values.reshape(-1, values.shape[-1])
      d = scales[tensor_name].reshape(rows.shape)[:, ::BLOCK]
      blocks = to_blocks(np.rint(rows).astype(np.uint8), d, kind)
      tensors[tensor_name] = RawTensor(blocks.reshape(*values.shape[:-1], -1), kind.upper())
    else:  # float32 whatever the file type says
      tensors[tensor_name] = RawTensor(np.asarray(values, np.float32), "F32")
  return save_gguf(path, model_config, None, tokenizer, tensor_type=kind.upper(), name=name,
                   tensors=tensors)

"""Saving and loading quantized parameters: safetensors plus a quantization config.

  DIR/model.safetensors   float tensors by path ("embed", "layers/attn/q_proj", ...) and, for
                          each quantized weight, "<path>.packed" (uint8), ".scales", ".zeros"
  DIR/quantization.json   the model config, the settings, and for each quantized weight its
                          bits, group size and per-layer in/out shapes

Loading gives back the same pytree, so the model's outputs are identical.
"""

import json
import os
import tempfile

import jax
import numpy as np

from llm.io import flatten_paths, put_path
from llm.quant.quantized import QuantizedWeight

FORMAT = "llm-lifecycle-quantized/1"


def save_quantized(directory: str, params: dict, model_config: dict, settings: str) -> str:
  """Writes DIR atomically (a temp folder renamed into place); returns it."""
  from safetensors.numpy import save_file
  if os.path.exists(directory):
    raise FileExistsError(f"{directory} exists; remove it or pick another folder")
  tensors, weights = {}, {}
  for path, value in flatten_paths(params).items():
    if isinstance(value, QuantizedWeight):
      for part in ("packed", "scales", "zeros"):
        tensors[f"{path}.{part}"] = np.asarray(getattr(value, part))
      weights[path] = {"bits": value.bits, "group_size": value.group_size,
                       "in_shape": list(value.in_shape), "out_shape": list(value.out_shape)}
    else:
      tensors[path] = np.asarray(value)
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".quantized-", dir=parent)
  save_file(tensors, os.path.join(tmp, "model.safetensors"))
  with open(os.path.join(tmp, "quantization.json"), "w", encoding="utf-8") as f:
    json.dump({"format": FORMAT, "settings": settings, "model": model_config,
               "quantized": weights}, f, indent=2)
  os.rename(tmp, directory)
  return directory


def load_quantized(directory: str) -> tuple[dict, dict]:
  """(params with QuantizedWeight leaves, the quantization.json contents)."""
  from safetensors.numpy import load_file
  with open(os.path.join(directory, "quantization.json"), encoding="utf-8") as f:
    meta = json.load(f)
  if meta.get("format") != FORMAT:
    raise ValueError(f"{directory} is not a quantized checkpoint of this project "
                     f"(format {meta.get('format')!r}, expected {FORMAT!r})")
  tensors = load_file(os.path.join(directory, "model.safetensors"))
  params = {}
  for path, info in meta["quantized"].items():
    put_path(params, path, QuantizedWeight(
        *(jax.numpy.asarray(tensors.pop(f"{path}.{p}")) for p in ("packed", "scales", "zeros")),
        info["bits"], info["group_size"], tuple(info["in_shape"]), tuple(info["out_shape"])))
  for path, value in tensors.items():
    put_path(params, path, jax.numpy.asarray(value))
  return params, meta


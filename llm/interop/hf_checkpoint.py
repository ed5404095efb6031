"""HF checkpoints (a folder with config.json, *.safetensors and optionally tokenizer.json) in
and out.

  config, params, tokenizer = load_hf_checkpoint("path/to/Llama-3.2-1B")
  save_hf_checkpoint("out/", config.model, params, tokenizer_json="path/tokenizer.json")

Export writes float32 safetensors that `transformers.AutoModelForCausalLM.from_pretrained`
loads (Llama, or Mixtral for a mixture of experts) into a temporary folder that is renamed
when complete.
"""

import glob
import json
import os
import shutil
import tempfile

import numpy as np

from llm.config import default_config
from llm.interop.hf_config import hf_config_from_model, model_config_from_hf
from llm.interop.hf_weights import hf_from_params, params_from_hf


class _SafetensorsFolder:
  """Tensors by name across every *.safetensors file of a folder, read lazily."""

  def __init__(self, directory: str):
    from safetensors import safe_open
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    if not files:
      raise FileNotFoundError(f"no *.safetensors files in {directory}")
    self._handles = [safe_open(f, framework="flax") for f in files]  # flax reads bfloat16
    self._where = {name: h for h in self._handles for name in h.keys()}

  def __call__(self, name: str) -> np.ndarray:
    if name not in self._where:
      raise KeyError(f"tensor {name!r} is missing from the checkpoint")
    return np.asarray(self._where[name].get_tensor(name), np.float32)

  def names(self) -> set:
    return set(self._where)


def load_hf_checkpoint(directory: str, scan_layers: bool = True):
  """(experiment config with the imported model section, params, tokenizer or None)."""
  with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
    hf = json.load(f)
  config = default_config()
  config.model = model_config_from_hf(hf)
  config.model.scan_layers = scan_layers
  config.data.seq_len = min(config.model.max_seq_len, 2048)
  tensors = _SafetensorsFolder(directory)
  if "lm_head.weight" not in tensors.names():
    config.model.tie_embeddings = True  # some checkpoints omit the tied head
  params = params_from_hf(tensors, config.model)
  tokenizer = None
  if os.path.exists(os.path.join(directory, "tokenizer.json")):
    from llm.tokenizer.hf_tokenizer import HFTokenizer
    tokenizer = HFTokenizer(os.path.join(directory, "tokenizer.json"))
    config.data.tokenizer_path = tokenizer.path
  config.model.vocab_size = int(params["embed"].shape[0])
  return config, params, tokenizer


def save_hf_checkpoint(directory: str, model_config, params: dict, *,
                       tokenizer_json: str | None = None, bos_id: int | None = None,
                       eos_id: int | None = None) -> str:
  """Writes config.json + model.safetensors (+ tokenizer.json) to `directory`; returns it."""
  from safetensors.numpy import save_file
  hf = hf_config_from_model(model_config, bos_id=bos_id, eos_id=eos_id)
  tensors = hf_from_params(params, model_config)
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
      json.dump(hf, f, indent=2)
    if tokenizer_json:
      shutil.copy(tokenizer_json, os.path.join(tmp, "tokenizer.json"))
    if os.path.exists(directory):
      shutil.rmtree(directory)
    os.replace(tmp, directory)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return directory

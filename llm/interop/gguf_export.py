"""Our models out as GGUF files for llama.cpp (and ollama, LM Studio, transformers):

  save_gguf("model.gguf", config.model, params, tokenizer, tensor_type="Q8_0")

The llama architecture (dense, or Mixtral-style experts), tensors as llama.cpp's converter
writes them (query/key rows interleaved for its rotary layout, experts stacked), the RoPE
scaling (linear, yarn, or llama3 as per-frequency `rope_freqs` factors), and our SentencePiece
tokenizer as a `llama` vocabulary: pieces, scores and piece types, plus the whole SentencePiece
model under `llm.sentencepiece_model`, which our importer prefers, so our own round trip is
exact. (llama.cpp's tokenizer does not know SentencePiece's whitespace-only pieces or digit
splitting, so its ids can differ from ours on runs of spaces.) Matrices are written as F32,
F16 or Q8_0; norms and the RoPE factors stay F32. The file is written to a temporary name and
renamed, so a failed export leaves no partial file.
"""

import os
from typing import NamedTuple

import numpy as np

from llm.interop.gguf_import import EXPERT_NAMES, GLOBAL_NAMES, LAYER_NAMES
from llm.interop.gguf_tokenizer import SENTENCEPIECE_KEY
from llm.interop.hf_config import hf_config_from_model
from llm.interop.hf_weights import hf_from_params
from llm.model.rope import inverse_frequencies

TENSOR_TYPES = ("F32", "F16", "Q8_0")


class RawTensor(NamedTuple):
  """Bytes already in a GGML block type (e.g. GPTQ codes as Q4_0, llm/quant/gguf_out.py)."""
  data: np.ndarray  # uint8 [rows, row bytes]
  qtype: str        # "Q4_0", "Q8_0"


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
  """llama.cpp's row order for rotary query/key projections (its importer undoes it)."""
  return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def gguf_tensors(model_config, params: dict) -> dict:
  """GGUF tensor name -> float32 array (HF [out, in] layout, llama.cpp row order)."""
  if model_config.get("qkv_bias", False):
    raise ValueError("models with q/k/v biases (Qwen2) do not export to GGUF yet; export to "
                     "HF safetensors with save_hf_checkpoint instead")
  hf = hf_from_params(params, model_config)
  to_gguf = {v: k for k, v in GLOBAL_NAMES.items()}
  layer_names = {v: k for k, v in LAYER_NAMES.items()}
  out, experts = {}, {}
  for name, w in hf.items():
    if name in to_gguf:
      out[to_gguf[name]] = w
      continue
    _, _, layer, rest = name.split(".", 3)
    if rest.startswith("block_sparse_moe.experts."):
      j, kind = rest.split(".")[2:4]
      experts.setdefault((layer, kind), {})[int(j)] = w
      continue
    if rest.endswith(("q_proj.weight", "k_proj.weight")):
      heads = model_config.num_heads if "q_proj" in rest else model_config.num_kv_heads
      w = llama_cpp_permute(w, heads)
    out[f"blk.{layer}.{layer_names[rest]}"] = w
  gguf_expert = {v: k for k, v in EXPERT_NAMES.items()}
  for (layer, kind), by_index in experts.items():
    out[f"blk.{layer}.{gguf_expert[kind]}"] = np.stack([by_index[j] for j in sorted(by_index)])
  rope, head_dim = model_config.rope, model_config.head_dim
  if rope.scaling == "llama3":
    plain = 1.0 / rope.theta ** (np.arange(0, head_dim, 2) / head_dim)
    out["rope_freqs.weight"] = plain / inverse_frequencies(head_dim, rope)[0]
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def save_gguf(path: str, model_config, params: dict, tokenizer=None, *,
              tensor_type: str = "F32", name: str = "llm", tensors: dict | None = None) -> str:
  """Writes `path` (a llama-architecture GGUF file); returns it. `tensors` (GGUF name ->
  float array or RawTensor) replaces the ones made from `params` (pass params=None)."""
  import gguf
  if tensor_type not in TENSOR_TYPES + ("Q4_0",) or (tensor_type == "Q4_0" and not tensors):
    raise ValueError(f"tensor_type {tensor_type!r}: choose one of {TENSOR_TYPES}")
  hf = hf_config_from_model(model_config)  # also refuses what no Llama/Mixtral checkpoint can hold
  if model_config.rope.scaling == "ntk":
    raise ValueError("llama.cpp has no NTK-aware RoPE scaling; use linear, yarn or llama3")
  tensors = tensors if tensors is not None else gguf_tensors(model_config, params)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp"
  try:
    _write(gguf, tmp, model_config, hf, tensors, tokenizer, name, tensor_type)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  os.replace(tmp, path)
  return path


def _write(gguf, tmp: str, model_config, hf: dict, tensors: dict, tokenizer, name: str,
           tensor_type: str) -> None:
  writer = gguf.GGUFWriter(tmp, "llama")
  _write_metadata(writer, gguf, model_config, hf, name, tensor_type)
  if tokenizer is not None:
    _write_sentencepiece(writer, tokenizer)
  for tensor_name, w in tensors.items():
    if isinstance(w, RawTensor):
      writer.add_tensor(tensor_name, w.data, raw_dtype=gguf.GGMLQuantizationType[w.qtype])
      continue
    kind = _storage_type(w, tensor_type)
    if kind == "F32":
      writer.add_tensor(tensor_name, w)
    elif kind == "F16":
      writer.add_tensor(tensor_name, w.astype(np.float16))
    else:
      qtype = gguf.GGMLQuantizationType.Q8_0
      writer.add_tensor(tensor_name, gguf.quants.quantize(w, qtype), raw_dtype=qtype)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()


def _storage_type(w: np.ndarray, tensor_type: str) -> str:
  """Matrices in the chosen type (Q8_0 needs rows of whole 32-value blocks, else F16); norms
  and the RoPE factors in F32."""
  if w.ndim < 2 or tensor_type == "F32":
    return "F32"
  if tensor_type == "Q4_0":  # what GPTQ did not quantize (embedding, head) stays F32
    return "F32"
  return "F16" if tensor_type == "Q8_0" and w.shape[-1] % 32 else tensor_type


def _write_metadata(writer, gguf, model_config, hf: dict, name: str, tensor_type: str) -> None:
  writer.add_name(name)
  writer.add_block_count(model_config.num_layers)
  writer.add_context_length(model_config.max_seq_len)
  writer.add_embedding_length(model_config.d_model)
  writer.add_feed_forward_length(hf["intermediate_size"])
  writer.add_head_count(model_config.num_heads)
  writer.add_head_count_kv(model_config.num_kv_heads)
  writer.add_key_length(model_config.head_dim)
  writer.add_value_length(model_config.head_dim)
  writer.add_rope_dimension_count(model_config.head_dim)
  writer.add_rope_freq_base(model_config.rope.theta)
  writer.add_layer_norm_rms_eps(model_config.norm_eps)
  if model_config.rope.scaling in ("linear", "yarn"):
    writer.add_rope_scaling_type(gguf.RopeScalingType[model_config.rope.scaling.upper()])
    writer.add_rope_scaling_factor(model_config.rope.factor)
    writer.add_rope_scaling_orig_ctx_len(model_config.rope.original_max_seq_len)
  if model_config.moe.num_experts:
    writer.add_expert_count(model_config.moe.num_experts)
    writer.add_expert_used_count(model_config.moe.top_k)
  writer.add_file_type({"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                        "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                        "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[tensor_type])


def _write_sentencepiece(writer, tokenizer) -> None:
  from sentencepiece import sentencepiece_model_pb2 as sp_model
  processor = getattr(tokenizer, "_sp", None)
  if processor is None:
    raise ValueError("only SentencePiece tokenizers export to GGUF; for a tokenizer.json, "
                     "pass tokenizer=None and ship the tokenizer.json beside the file")
  serialized = processor.serialized_model_proto()
  proto = sp_model.ModelProto.FromString(serialized)
  writer.add_tokenizer_model("llama")
  writer.add_token_list([p.piece for p in proto.pieces])
  writer.add_token_scores([p.score for p in proto.pieces])
  writer.add_token_types([int(p.type) for p in proto.pieces])
  writer.add_unk_token_id(tokenizer.unk_id)
  writer.add_bos_token_id(tokenizer.bos_id)
  writer.add_eos_token_id(tokenizer.eos_id)
  writer.add_pad_token_id(tokenizer.pad_id)
  writer.add_add_space_prefix(bool(proto.normalizer_spec.add_dummy_prefix))
  writer.add_array(SENTENCEPIECE_KEY, list(serialized))

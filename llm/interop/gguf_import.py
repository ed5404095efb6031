"""GGUF files (llama.cpp) in: metadata -> our model config, tensors dequantized to float32 ->
our parameters, the vocabulary -> a tokenizer (`gguf_tokenizer.py`).

  config, params, tokenizer = load_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")

Architectures: llama (Llama 1-3, Mistral and SmolLM2 files; Llama 3.1+ RoPE scaling from its
`rope_freqs` tensor), qwen2, and llama-style mixtures of experts (Mixtral). Tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 and the K-quants
Q4_K, Q5_K and Q6_K (so Q4_K_M / Q5_K_M files), dequantized by the `gguf` package. llama.cpp stores llama query and key weights with their rows interleaved for
its rotary layout; they are put back into the half-split layout ours and HF's use.
"""

import math

import ml_collections
import numpy as np

from llm.config import default_config
from llm.interop.hf_config import model_config_from_hf
from llm.interop.hf_weights import params_from_hf
from llm.model.rope import inverse_frequencies

# Each checked against a block decoder written independently in tests/interop/gguf_files.py.
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q4_K", "Q5_K", "Q6_K")
LAYER_NAMES = {"attn_norm.weight": "input_layernorm.weight",
                "ffn_norm.weight": "post_attention_layernorm.weight",
                "attn_q.weight": "self_attn.q_proj.weight",
                "attn_k.weight": "self_attn.k_proj.weight",
                "attn_v.weight": "self_attn.v_proj.weight",
                "attn_output.weight": "self_attn.o_proj.weight",
                "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
                "attn_v.bias": "self_attn.v_proj.bias",
                "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
                "ffn_down.weight": "mlp.down_proj.weight",
                "ffn_gate_inp.weight": "block_sparse_moe.gate.weight"}
EXPERT_NAMES = {"ffn_gate_exps.weight": "w1", "ffn_down_exps.weight": "w2",
                 "ffn_up_exps.weight": "w3"}
GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight",
                 "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}


def gguf_metadata(reader) -> dict:
  """Scalar and string metadata (the long token arrays are left out)."""
  out = {}
  for key, field in reader.fields.items():
    if key.startswith("tokenizer.ggml.") and key not in (
        "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"):
      continue
    out[key] = field.contents()
  return out


def hf_config_from_gguf(meta: dict, vocab_size: int, tied: bool) -> dict:
  """The HF config.json a GGUF file's metadata describes."""
  arch = meta["general.architecture"]
  if arch not in ("llama", "qwen2"):
    raise ValueError(f"GGUF architecture {arch!r} is not supported; llama and qwen2 are")
  g = lambda key, default=None: meta.get(f"{arch}.{key}", default)  # noqa: E731
  heads = g("attention.head_count")
  hf = {"model_type": arch, "vocab_size": vocab_size, "hidden_size": g("embedding_length"),
        "intermediate_size": g("feed_forward_length"), "num_hidden_layers": g("block_count"),
        "num_attention_heads": heads, "num_key_value_heads": g("attention.head_count_kv", heads),
        "head_dim": g("attention.key_length") or g("embedding_length") // heads,
        "max_position_embeddings": g("context_length", 2048),
        "rms_norm_eps": g("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": g("rope.freq_base", 10000.0), "tie_word_embeddings": tied}
  scaling = g("rope.scaling.type", "none")
  if scaling not in ("none", "linear", "yarn"):
    raise ValueError(f"GGUF RoPE scaling {scaling!r} is not supported (none, linear, yarn)")
  if scaling != "none":
    hf["rope_scaling"] = {"rope_type": scaling, "factor": g("rope.scaling.factor", 1.0),
                          "original_max_position_embeddings": g(
                              "rope.scaling.original_context_length",
                              hf["max_position_embeddings"])}
  if g("expert_count"):
    hf.update(model_type="mixtral", num_local_experts=g("expert_count"),
              num_experts_per_tok=g("expert_used_count"))
  return hf


def llama3_scaling(rope_factors: np.ndarray, theta: float, head_dim: int) -> dict:
  """The HF `rope_scaling` of Llama 3.1+, recovered from the per-frequency factors llama.cpp
  stores as `rope_freqs.weight` (it divides each frequency by its factor).

  The factors are 1 above a wavelength band, `factor` below it, and 1 / ((1 - s) / factor + s)
  inside it, where s is linear in 1 / wavelength. Only the band's two wavelengths matter, so
  they are fitted from the in-band factors with original_max_position_embeddings fixed at 8192;
  the result must reproduce every stored factor."""
  factors = np.asarray(rope_factors, np.float64)
  wavelen = 2 * math.pi * theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  factor = float(factors.max())
  inside = (factors > 1 + 1e-6) & (factors < factor * (1 - 1e-6))
  if factor <= 1 + 1e-6 or inside.sum() < 2 or len(factors) != head_dim // 2:
    raise ValueError(f"rope_freqs.weight ({len(factors)} factors, max {factor:.4g}) is not a "
                     "Llama 3 wavelength band with at least two in-band frequencies; this "
                     "RoPE scaling is not supported")
  smooth = (1 / factors[inside] - 1 / factor) / (1 - 1 / factor)
  slope, intercept = np.polyfit(1 / wavelen[inside], smooth, 1)  # s = slope / w + intercept
  original = 8192.0
  scaling = {"rope_type": "llama3", "factor": factor,
             "low_freq_factor": float(-intercept * original / slope),  # s = 0
             "high_freq_factor": float((1 - intercept) * original / slope),  # s = 1
             "original_max_position_embeddings": int(original)}
  rope = ml_collections.ConfigDict(dict(
      theta=theta, scaling="llama3", factor=factor, original_max_seq_len=original,
      low_freq_factor=scaling["low_freq_factor"], high_freq_factor=scaling["high_freq_factor"]))
  fitted = (1.0 / theta ** (np.arange(0, head_dim, 2) / head_dim)) / inverse_frequencies(
      head_dim, rope)[0]
  if not np.allclose(fitted, factors, rtol=1e-4, atol=0):
    raise ValueError("rope_freqs.weight does not follow Llama 3's wavelength band (largest "
                     f"mismatch {np.abs(fitted / factors - 1).max():.2e}); not supported")
  return scaling


def dequantize(tensor) -> np.ndarray:
  """A GGUF tensor as float32 in numpy order (GGUF lists dimensions fastest first)."""
  import gguf
  kind = tensor.tensor_type.name
  if kind not in SUPPORTED_TYPES:
    raise ValueError(f"tensor {tensor.name} is {kind}; supported types are {SUPPORTED_TYPES} "
                     "(requantize the file, e.g. llama-quantize ... Q8_0)")
  values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
  return np.asarray(values, np.float32).reshape(tuple(int(d) for d in reversed(tensor.shape)))


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
  """Undo llama.cpp's row interleaving of rotary query/key projections (rows: heads x dim)."""
  rows = w.shape[0]  # llama.cpp wrote reshape(heads, 2, half, ...).swapaxes(1, 2)
  return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_tensors(reader, hf: dict) -> dict:
  """HF tensor name -> float32 array for every tensor of the file."""
  out = {}
  for tensor in reader.tensors:
    name = tensor.name
    if name == "rope_freqs.weight":  # read by load_gguf into the RoPE config
      continue
    if name in GLOBAL_NAMES:
      out[GLOBAL_NAMES[name]] = dequantize(tensor)
      continue
    _, layer, rest = name.split(".", 2)
    prefix = f"model.layers.{layer}."
    if rest in EXPERT_NAMES:
      experts = dequantize(tensor)
      for j, w in enumerate(experts):
        out[f"{prefix}block_sparse_moe.experts.{j}.{EXPERT_NAMES[rest]}.weight"] = w
      continue
    if rest not in LAYER_NAMES:
      raise ValueError(f"GGUF tensor {name} has no counterpart in our model")
    w = dequantize(tensor)
    if hf["model_type"] != "qwen2" and rest in ("attn_q.weight", "attn_k.weight"):
      w = _unpermute(w, hf["num_attention_heads"] if rest == "attn_q.weight"
                     else hf["num_key_value_heads"])
    out[prefix + LAYER_NAMES[rest]] = w
  return out


def load_gguf(path: str, scan_layers: bool = True):
  """(experiment config with the file's model, float32 params, tokenizer)."""
  import gguf
  from llm.interop.gguf_tokenizer import tokenizer_from_gguf
  reader = gguf.GGUFReader(str(path))
  meta = gguf_metadata(reader)
  names = {t.name for t in reader.tensors}
  tokenizer = tokenizer_from_gguf(reader)
  hf = hf_config_from_gguf(meta, tokenizer.vocab_size, tied="output.weight" not in names)
  if hf["model_type"] == "qwen2":
    hf["attention_bias"] = "blk.0.attn_q.bias" in names
  if "rope_freqs.weight" in names:
    factors = dequantize(next(t for t in reader.tensors if t.name == "rope_freqs.weight"))
    hf["rope_scaling"] = llama3_scaling(factors.reshape(-1), hf["rope_theta"], hf["head_dim"])
  config = default_config()
  config.model = model_config_from_hf(hf)
  config.model.scan_layers = scan_layers
  config.data.seq_len = min(config.model.max_seq_len, 2048)
  tensors = _hf_tensors(reader, hf)
  params = params_from_hf(tensors.__getitem__, config.model)
  config.model.vocab_size = int(params["embed"].shape[0])
  return config, params, tokenizer

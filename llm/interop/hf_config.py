"""HF `config.json` (Llama, Mistral, Qwen2, Mixtral) <-> our `config.model` section.

Reads the rotary settings in both layouts transformers has used: `rope_theta` with
`rope_scaling` (4.x) and `rope_parameters` (5.x).
"""

import ml_collections

from llm.config import default_config

ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM", "mixtral": "MixtralForCausalLM"}
_ROPE_TYPES = {"default": "none", "linear": "linear", "dynamic": "ntk", "llama3": "llama3",
               "yarn": "yarn"}


def _rope(hf: dict) -> dict:
  params = dict(hf.get("rope_parameters") or {})
  legacy = hf.get("rope_scaling") or {}
  params.update({k: v for k, v in legacy.items() if k not in params})
  params.setdefault("rope_theta", hf.get("rope_theta", 10000.0))
  kind = params.get("rope_type", params.get("type", "default"))
  if kind not in _ROPE_TYPES:
    raise ValueError(f"RoPE type {kind!r} is not supported; ours: {sorted(_ROPE_TYPES)}")
  return params | {"rope_type": kind}


def model_config_from_hf(hf: dict) -> ml_collections.ConfigDict:
  """Our model section for an HF config.json dict (f32 parameters, xla attention)."""
  kind = hf.get("model_type")
  if kind not in ARCHITECTURES:
    raise ValueError(f"model_type {kind!r} is not supported; import one of "
                     f"{sorted(ARCHITECTURES)}")
  if hf.get("hidden_act", "silu") != "silu":
    raise ValueError(f"hidden_act {hf['hidden_act']!r}: only SwiGLU (silu) MLPs are supported")
  if hf.get("mlp_bias") or (hf.get("attention_bias") and kind != "qwen2"):
    raise ValueError("biases on the MLP or on attention other than Qwen2's q/k/v are not "
                     "supported")
  model = default_config().model
  model.vocab_size, model.d_model = hf["vocab_size"], hf["hidden_size"]
  model.num_layers, model.num_heads = hf["num_hidden_layers"], hf["num_attention_heads"]
  model.num_kv_heads = hf.get("num_key_value_heads") or model.num_heads
  model.head_dim = hf.get("head_dim") or model.d_model // model.num_heads
  model.mlp_dim = hf["intermediate_size"]
  model.max_seq_len = hf.get("max_position_embeddings", 2048)
  model.norm_eps = hf.get("rms_norm_eps", 1e-6)
  model.tie_embeddings = bool(hf.get("tie_word_embeddings", False))
  model.qkv_bias = kind == "qwen2" and hf.get("attention_bias", True)
  model.compute_dtype = "float32"
  rope = _rope(hf)
  model.rope.theta = float(rope["rope_theta"])
  model.rope.scaling = _ROPE_TYPES[rope["rope_type"]]
  model.rope.factor = float(rope.get("factor", 1.0))
  model.rope.original_max_seq_len = int(rope.get("original_max_position_embeddings",
                                                 model.max_seq_len))
  for ours, theirs in (("low_freq_factor", "low_freq_factor"),
                       ("high_freq_factor", "high_freq_factor"),
                       ("beta_fast", "beta_fast"), ("beta_slow", "beta_slow")):
    if theirs in rope:
      model.rope[ours] = float(rope[theirs])
  if kind == "mixtral":
    model.moe.num_experts, model.moe.top_k = hf["num_local_experts"], hf["num_experts_per_tok"]
    model.moe.mode, model.moe.expert_mlp_dim = "dropless", hf["intermediate_size"]
    model.moe.load_balance_coef = float(hf.get("router_aux_loss_coef", 0.01))
  return model


def hf_config_from_model(model_config, *, bos_id: int | None = None,
                         eos_id: int | None = None) -> dict:
  """An HF config.json dict (Llama, or Mixtral for a mixture of experts) for our model."""
  moe, rope = model_config.moe, model_config.rope
  if moe.num_experts and (moe.every != 1 or moe.shared_experts or moe.new_experts):
    raise ValueError("only Mixtral-style MoE (every layer, no shared or added experts) exports")
  if model_config.side_adapter_dim or model_config.lora.rank:
    raise ValueError("merge LoRA (llm.model.lora.merge_lora) and drop side adapters before "
                     "export: HF Llama has neither")
  rope_parameters = {"rope_theta": rope.theta,
                     "rope_type": {v: k for k, v in _ROPE_TYPES.items()}[rope.scaling]}
  if rope.scaling != "none":
    rope_parameters.update(factor=rope.factor,
                           original_max_position_embeddings=rope.original_max_seq_len)
  if rope.scaling == "llama3":
    rope_parameters.update(low_freq_factor=rope.low_freq_factor,
                           high_freq_factor=rope.high_freq_factor)
  if rope.scaling == "yarn":
    rope_parameters.update(beta_fast=rope.beta_fast, beta_slow=rope.beta_slow)
  hf = {"vocab_size": model_config.vocab_size, "hidden_size": model_config.d_model,
        "intermediate_size": model_config.mlp_dim, "num_hidden_layers": model_config.num_layers,
        "num_attention_heads": model_config.num_heads,
        "num_key_value_heads": model_config.num_kv_heads, "head_dim": model_config.head_dim,
        "hidden_act": "silu", "max_position_embeddings": model_config.max_seq_len,
        "rms_norm_eps": model_config.norm_eps,
        "tie_word_embeddings": bool(model_config.tie_embeddings),
        "rope_parameters": rope_parameters, "rope_theta": rope.theta, "attention_bias": False,
        "mlp_bias": False, "torch_dtype": "float32", "model_type": "llama",
        "architectures": ["LlamaForCausalLM"]}
  if rope.scaling != "none":
    hf["rope_scaling"] = dict(rope_parameters)
  if bos_id is not None:
    hf["bos_token_id"] = bos_id
  if eos_id is not None:
    hf["eos_token_id"] = eos_id
  if moe.num_experts:
    hf.update(model_type="mixtral", architectures=["MixtralForCausalLM"],
              num_local_experts=moe.num_experts, num_experts_per_tok=moe.top_k,
              intermediate_size=moe.expert_mlp_dim or model_config.mlp_dim, sliding_window=None,
              router_aux_loss_coef=moe.load_balance_coef)
  return hf

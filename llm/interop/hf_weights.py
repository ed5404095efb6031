"""HF tensor names and layouts (Llama, Mistral, Qwen2, Mixtral) <-> our parameter tree.

HF linear weights are [out, in]; ours are [in, ...out] with heads split out: q_proj
[d_model, heads, head_dim], o_proj [heads, head_dim, d_model], gate/up [d_model, mlp],
down [mlp, d_model], experts stacked on a leading axis, the router [d_model, experts]. Both
rotate queries and keys in the half-split RoPE layout, so no permutation is needed. Our
parameters are produced in the scanned layout (a leading layer axis) or per layer.
"""

import numpy as np

_ATTN = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj",
         "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj"}
_MLP = {"gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
_EXPERT = {"gate": "w1", "down": "w2", "up": "w3"}


def _f32(x) -> np.ndarray:
  return np.asarray(x, dtype=np.float32)


def _layer_from_hf(get, i: int, model_config) -> dict:
  """One block's parameters; get(name) returns the HF tensor of that name."""
  h, kv = model_config.num_heads, model_config.num_kv_heads
  d, k = model_config.d_model, model_config.head_dim
  p = f"model.layers.{i}."
  heads = {"q_proj": h, "k_proj": kv, "v_proj": kv}
  attn = {ours: _f32(get(p + theirs + ".weight")).T.reshape(d, heads[ours], k)
          for ours, theirs in _ATTN.items() if ours != "o_proj"}
  attn["o_proj"] = _f32(get(p + "self_attn.o_proj.weight")).T.reshape(h, k, d)
  if model_config.get("qkv_bias", False):
    for ours in ("q", "k", "v"):
      attn[f"{ours}_bias"] = _f32(get(p + f"self_attn.{ours}_proj.bias")).reshape(
          heads[f"{ours}_proj"], k)
  layer = {"attn": attn, "attn_norm": {"scale": _f32(get(p + "input_layernorm.weight"))},
           "mlp_norm": {"scale": _f32(get(p + "post_attention_layernorm.weight"))}}
  if model_config.moe.num_experts:
    e = p + "block_sparse_moe."
    layer["mlp"] = {"router": _f32(get(e + "gate.weight")).T}
    for ours, theirs in _EXPERT.items():
      layer["mlp"][ours] = np.stack([_f32(get(f"{e}experts.{j}.{theirs}.weight")).T
                                     for j in range(model_config.moe.num_experts)])
  else:
    layer["mlp"] = {ours: _f32(get(p + theirs + ".weight")).T for ours, theirs in _MLP.items()}
  return layer


def params_from_hf(get, model_config) -> dict:
  """Our parameter tree (numpy float32) from HF tensors; get(name) -> array. Layers are
  stacked when model_config.scan_layers, else keyed 0..L-1."""
  layers = [_layer_from_hf(get, i, model_config) for i in range(model_config.num_layers)]
  params = {"embed": _f32(get("model.embed_tokens.weight")),
            "final_norm": {"scale": _f32(get("model.norm.weight"))}}
  if model_config.scan_layers:
    params["layers"] = _stack(layers)
  else:
    params["layers"] = dict(enumerate(layers))
  if not model_config.tie_embeddings:
    params["lm_head"] = _f32(get("lm_head.weight")).T
  return params


def _stack(trees: list):
  if isinstance(trees[0], dict):
    return {key: _stack([t[key] for t in trees]) for key in trees[0]}
  return np.stack(trees)


def hf_from_params(params: dict, model_config) -> dict:
  """HF tensors {name: float32 array} from our parameter tree (scanned or per layer)."""
  params = _numpy(params)
  layers = params["layers"]
  out = {"model.embed_tokens.weight": params["embed"],
         "model.norm.weight": params["final_norm"]["scale"]}
  for i in range(model_config.num_layers):
    layer = _index(layers, i) if model_config.scan_layers else layers[i]
    p = f"model.layers.{i}."
    for ours, theirs in _ATTN.items():
      w = layer["attn"][ours]
      out[p + theirs + ".weight"] = (w.reshape(model_config.d_model, -1).T if ours != "o_proj"
                                     else w.reshape(-1, model_config.d_model).T)
    for ours in ("q", "k", "v"):
      if f"{ours}_bias" in layer["attn"]:
        out[p + f"self_attn.{ours}_proj.bias"] = layer["attn"][f"{ours}_bias"].reshape(-1)
    out[p + "input_layernorm.weight"] = layer["attn_norm"]["scale"]
    out[p + "post_attention_layernorm.weight"] = layer["mlp_norm"]["scale"]
    mlp = layer["mlp"]
    if model_config.moe.num_experts:
      out[p + "block_sparse_moe.gate.weight"] = mlp["router"].T
      for ours, theirs in _EXPERT.items():
        for j in range(mlp[ours].shape[0]):
          out[f"{p}block_sparse_moe.experts.{j}.{theirs}.weight"] = mlp[ours][j].T
    else:
      for ours, theirs in _MLP.items():
        out[p + theirs + ".weight"] = mlp[ours].T
  if not model_config.tie_embeddings:
    out["lm_head.weight"] = params["lm_head"].T
  return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _numpy(tree):
  if isinstance(tree, dict):
    return {k: _numpy(v) for k, v in tree.items()}
  return np.asarray(tree, dtype=np.float32)


def _index(tree, i: int):
  if isinstance(tree, dict):
    return {k: _index(v, i) for k, v in tree.items()}
  return tree[i]

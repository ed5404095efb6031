"""One pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x)).

The MLP is a dense SwiGLU or a mixture of experts (`moe.py`); an optional side adapter adds
its own SwiGLU on the residual stream, its output projection zero at initialisation, so a
frozen base with a fresh adapter computes the base model exactly.
"""

import math

import jax
from flax import nnx

from llm.model.attention import Attention
from llm.model.mlp import SwiGLU
from llm.model.moe import MoE
from llm.model.norm import RMSNorm
from llm.model.ops import dtype_of


class Block(nnx.Module):

  def __init__(self, model_config, rngs: nnx.Rngs, moe: bool = False):
    """`model_config` is the `config.model` section; `moe` makes this block's MLP a mixture of
    experts."""
    cd = dtype_of(model_config.compute_dtype)
    d_model, eps, init_std = model_config.d_model, model_config.norm_eps, model_config.init_std
    out_std = init_std / math.sqrt(2 * model_config.num_layers)  # GPT-2 residual-output scaling
    self.attn_norm = RMSNorm(d_model, eps)
    self.attn = Attention(d_model, model_config.num_heads, model_config.num_kv_heads,
                          model_config.head_dim, init_std=init_std, out_std=out_std,
                          compute_dtype=cd, impl=model_config.attention_impl, rngs=rngs,
                          lora=model_config.lora, qkv_bias=model_config.get("qkv_bias", False))
    self.mlp_norm = RMSNorm(d_model, eps)
    if moe:
      self.mlp = MoE(model_config, out_std=out_std, compute_dtype=cd, rngs=rngs)
    else:
      self.mlp = SwiGLU(d_model, model_config.mlp_dim, init_std=init_std, out_std=out_std,
                        compute_dtype=cd, rngs=rngs, lora=model_config.lora)
    self.is_moe = moe
    if model_config.side_adapter_dim:
      self.side_norm = RMSNorm(d_model, eps)
      self.side = SwiGLU(d_model, model_config.side_adapter_dim, init_std=init_std, out_std=0.0,
                         compute_dtype=cd, rngs=rngs)

  def __call__(self, x, rotary, positions, segment_ids, cache=None, cache_index=None, rng=None):
    """x [batch, seq, d_model] float32 -> (same shape, updated layer cache or None, MoE
    routing metrics of this block, {} for a dense one)."""
    attn_rng, mlp_rng = (None, None) if rng is None else jax.random.split(rng)
    h, cache = self.attn(self.attn_norm(x), rotary, positions, segment_ids, cache, cache_index,
                         attn_rng)
    x = x + h
    aux = {}
    if self.is_moe:
      h, aux = self.mlp(self.mlp_norm(x), mlp_rng)
    else:
      h = self.mlp(self.mlp_norm(x), mlp_rng)
    out = x + h
    if hasattr(self, "side"):
      out = out + self.side(self.side_norm(x))
    return out, cache, aux

"""One pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x))."""

import math

from flax import nnx

from llm.model.attention import Attention
from llm.model.mlp import SwiGLU
from llm.model.norm import RMSNorm
from llm.model.ops import dtype_of


class Block(nnx.Module):

  def __init__(self, m, rngs: nnx.Rngs):
    """`m` is the `config.model` section."""
    cd = dtype_of(m.compute_dtype)
    out_std = m.init_std / math.sqrt(2 * m.num_layers)  # GPT-2 scaling of residual outputs
    self.attn_norm = RMSNorm(m.d_model, m.norm_eps)
    self.attn = Attention(m.d_model, m.num_heads, m.num_kv_heads, m.head_dim,
                          init_std=m.init_std, out_std=out_std, compute_dtype=cd,
                          impl=m.attention_impl, rngs=rngs)
    self.mlp_norm = RMSNorm(m.d_model, m.norm_eps)
    self.mlp = SwiGLU(m.d_model, m.mlp_dim, init_std=m.init_std, out_std=out_std,
                      compute_dtype=cd, rngs=rngs)

  def __call__(self, x, rotary, positions, segment_ids, cache=None, cache_index=None):
    """x [batch, seq, d_model] float32 -> (same shape, updated layer cache or None)."""
    h, cache = self.attn(self.attn_norm(x), rotary, positions, segment_ids, cache, cache_index)
    x = x + h
    x = x + self.mlp(self.mlp_norm(x))
    return x, cache

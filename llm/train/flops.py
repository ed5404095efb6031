"""Model FLOPs for MFU, and this machine's measured matmul peak."""

import functools
import time

import jax
import jax.numpy as jnp


def _mlp_params(model_config, index: int) -> tuple[int, int]:
  """(total, active per token) matmul parameters of layer `index`'s MLP or MoE."""
  moe, d_model = model_config.moe, model_config.d_model
  if not moe.num_experts or (index + 1) % moe.every:
    dense = 3 * d_model * model_config.mlp_dim
    return dense, dense
  expert = 3 * d_model * (moe.expert_mlp_dim or model_config.mlp_dim)
  experts = moe.num_experts + moe.new_experts
  fixed = d_model * experts + moe.shared_experts * expert  # router, shared experts
  return fixed + experts * expert, fixed + moe.top_k * expert


def parameter_counts(model_config) -> dict:
  """Total and active-per-token parameters (all of them, and the matmul ones) of a config."""
  d_model, num_layers = model_config.d_model, model_config.num_layers
  attn = d_model * model_config.head_dim * (2 * model_config.num_heads
                                            + 2 * model_config.num_kv_heads)
  side = 3 * d_model * model_config.side_adapter_dim
  mlps = [_mlp_params(model_config, i) for i in range(num_layers)]
  head = d_model * model_config.vocab_size
  embeddings = head if model_config.tie_embeddings else 2 * head
  norms = d_model * (num_layers * (3 if model_config.side_adapter_dim else 2) + 1)
  matmul_total = num_layers * (attn + side) + sum(t for t, _ in mlps) + head
  matmul_active = num_layers * (attn + side) + sum(a for _, a in mlps) + head
  rest = embeddings - head + norms  # the untied input embedding is a lookup, not a matmul
  return {"total": matmul_total + rest, "active": matmul_active + rest,
          "matmul_total": matmul_total, "matmul_active": matmul_active}


def training_flops_per_token(model_config, seq_len: int) -> float:
  """6 * (active matmul parameters) + 12 * layers * seq_len * (heads * head_dim), per token.

  The attention term counts the full score matrix (what XLA computes), as in PaLM's MFU. With
  experts, only the top_k experts a token visits count (and the router).
  """
  matmul_params = parameter_counts(model_config)["matmul_active"]
  heads, head_dim = model_config.num_heads, model_config.head_dim
  return 6.0 * matmul_params + 12.0 * model_config.num_layers * seq_len * heads * head_dim


@functools.lru_cache(maxsize=None)
def measure_matmul_peak(dtype_name: str = "float32", size: int = 1024, repeats: int = 10) -> float:
  """Best observed FLOP/s of a jitted [size x size] matmul; bf16/f16 inputs accumulate in f32."""
  dtype = jnp.dtype(dtype_name)
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  b = jax.random.normal(jax.random.key(1), (size, size), dtype)
  matmul = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  matmul(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size**3 / best

"""Model FLOPs for MFU, and this machine's measured matmul peak."""

import functools
import time

import jax
import jax.numpy as jnp


def training_flops_per_token(m, seq_len: int) -> float:
  """6 * (matmul parameters) + 12 * layers * seq_len * (heads * head_dim), per token.

  The attention term counts the full score matrix (what XLA computes), as in PaLM's MFU.
  """
  attn = m.d_model * m.head_dim * (2 * m.num_heads + 2 * m.num_kv_heads)
  mlp = 3 * m.d_model * m.mlp_dim
  head = m.d_model * m.vocab_size
  matmul_params = m.num_layers * (attn + mlp) + head
  return 6.0 * matmul_params + 12.0 * m.num_layers * seq_len * m.num_heads * m.head_dim


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

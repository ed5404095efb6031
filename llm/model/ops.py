"""Small numerical helpers shared by the layers: mixed-precision matmul and dtype lookup."""

import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def dtype_of(name: str):
  """Maps a config dtype name to the jnp dtype."""
  return _DTYPES[name]


def mixed_einsum(equation: str, x, w, compute_dtype):
  """Einsum with both operands cast to `compute_dtype`, accumulating and returning float32."""
  return jnp.einsum(equation, x.astype(compute_dtype), w.astype(compute_dtype),
                    preferred_element_type=jnp.float32)

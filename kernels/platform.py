"""Which platform the kernels compile for, and its Pallas compiler parameters."""

import jax


def backend_name() -> str:
  """'gpu', 'tpu' or 'cpu' for the default backend (CUDA and ROCm both count as 'gpu')."""
  name = jax.default_backend()
  return "gpu" if name in ("gpu", "cuda", "rocm") else name


def compiler_params(platform: str, blocks, grid_rank: int):
  """Pallas compiler parameters: warps and pipeline stages on GPUs, parallel grid on TPUs."""
  if platform == "gpu":
    from jax.experimental.pallas import triton as plgpu
    return plgpu.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)
  if platform == "tpu":
    from jax.experimental.pallas import tpu as pltpu
    return pltpu.CompilerParams(dimension_semantics=("parallel",) * grid_rank)
  return None

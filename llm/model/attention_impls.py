"""Choosing and calling an attention implementation (`model.attention_impl`).

  xla     plain XLA (any platform): `blocked_attention.py` when queries and keys are one
          sequence (training, prefill), dense softmax attention in `attention.py` otherwise
  pallas  our flash kernel (`kernels/flash_attention.py`); interpret mode on CPU
  triton  our Triton forward + Pallas backward (NVIDIA GPUs, the `gpu` extra)
  cudnn   `jax.nn.dot_product_attention(implementation="cudnn")` (NVIDIA GPUs, bf16/fp16)
  auto    cudnn on GPUs for bf16/fp16 (else pallas); xla on TPUs (our kernel's Mosaic lowering
          is untested) and on CPU

The kernels take segment ids and causality by index instead of a dense mask, which equals the
model's mask because positions increase along a row within each packed document. Decoding
against a KV cache uses xla whichever kernel is chosen. Under a mesh, a kernel runs inside
shard_map: batch over the data-parallel axes, heads over `tensor`, so each device attends over
its own rows and heads and no operand is gathered.
"""

import math

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from kernels.platform import backend_name
from llm.parallel.sharding import BATCH_AXES

# "cudnn" and "triton" run on NVIDIA GPUs only; "auto" picks per platform (resolve)
IMPLS = ("xla", "pallas", "triton", "cudnn", "auto")


def resolve(impl: str, dtype) -> str:
  """The concrete implementation `auto` stands for on this platform and dtype."""
  if impl != "auto":
    return impl
  platform = backend_name()
  if platform == "gpu":
    return "cudnn" if jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) else "pallas"
  return "xla"


def _kernel_axes(batch: int, heads: int, kv_heads: int):
  """(batch axes, head axis) of the traced mesh a kernel can be split over; None when no mesh."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return None
  auto = {name: size for name, size, kind in zip(mesh.axis_names, mesh.axis_sizes,
                                                  mesh.axis_types)
          if kind != jax.sharding.AxisType.Manual and size > 1}
  batch_axes = tuple(a for a in BATCH_AXES if a in auto)
  if batch_axes and batch % math.prod(auto[a] for a in batch_axes):
    batch_axes = ()
  tensor = auto.get("tensor", 1)
  head_axis = "tensor" if tensor > 1 and heads % tensor == 0 and kv_heads % tensor == 0 else None
  return batch_axes, head_axis


def flash(q, k, v, segment_ids, forward: str):
  """Causal flash attention with segment ids, split over the mesh when there is one."""
  from kernels.flash_attention import flash_attention  # the kernels import Pallas lazily

  def call(q, k, v, segment_ids):
    return flash_attention(q, k, v, segment_ids, causal=True, forward=forward)

  axes = _kernel_axes(q.shape[0], q.shape[2], k.shape[2])
  if axes is None or axes == ((), None):
    return call(q, k, v, segment_ids)
  batch_axes, head_axis = axes
  rows = batch_axes or None
  qkv = P(rows, None, head_axis, None)
  manual = set(batch_axes) | ({head_axis} if head_axis else set())
  return jax.shard_map(call, in_specs=(qkv, qkv, qkv, P(rows, None)), out_specs=qkv,
                       axis_names=manual, check_vma=False)(q, k, v, segment_ids)

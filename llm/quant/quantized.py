"""A packed low-bit weight the model uses in place of a float one.

The model reads every weight as `param[...]`; a QuantizedWeight answers that with the
dequantized float32 array, computed inside the traced program from the packed integers, so
the matmul that follows reads 4 or 8 bits per weight from memory. Projections call
`contract(x)` instead: on GPUs an int4/int8 weight goes through the Pallas dequant-matmul
kernel (kernels/dequant_matmul.py), elsewhere through XLA (`matmul_impl` overrides). It is a
pytree: its arrays may carry leading axes (the stacked layers of a scanned model), which jit,
scan and device_put slice like any.

Storage of a weight W of shape in_shape + out_shape, viewed as [out, in] (GPTQ's layout):
  packed [..., out, in * bits / 8] uint8   (llm/quant/pack.py's bit order)
  scales, zeros [..., out, in / group] float32
"""

import contextlib
import contextvars
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from kernels.dequant_matmul import dequant_matmul
from kernels.platform import backend_name
from llm.model.ops import mixed_einsum
from llm.quant.pack import pack

_MATMUL = contextvars.ContextVar("quantized_matmul", default="auto")


@contextlib.contextmanager
def matmul_impl(impl: str):
  """"kernel" (the Pallas dequant-matmul; interpreted off GPU), "xla", or "auto" (the kernel
  on GPUs) for the quantized projections traced inside."""
  if impl not in ("auto", "kernel", "xla"):
    raise ValueError(f"matmul_impl {impl!r}: choose auto, kernel or xla")
  token = _MATMUL.set(impl)
  try:
    yield
  finally:
    _MATMUL.reset(token)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QuantizedWeight:
  packed: jax.Array
  scales: jax.Array
  zeros: jax.Array
  bits: int = dataclasses.field(metadata=dict(static=True))
  group_size: int = dataclasses.field(metadata=dict(static=True))  # 0: per channel
  in_shape: tuple = dataclasses.field(metadata=dict(static=True))
  out_shape: tuple = dataclasses.field(metadata=dict(static=True))

  @property
  def shape(self) -> tuple:
    lead = self.packed.shape[:-2]
    return tuple(lead) + tuple(self.in_shape) + tuple(self.out_shape)

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def nbytes(self) -> int:
    return sum(int(np.prod(a.shape)) * a.dtype.itemsize
               for a in (self.packed, self.scales, self.zeros))

  def __getitem__(self, index):
    if index is not Ellipsis:
      raise TypeError("a QuantizedWeight is read whole: weight[...]")
    return dequantize_weight(self)


  def contract(self, x, compute_dtype=jnp.float32):
    """x [..., *in_shape] @ W -> [..., *out_shape] float32."""
    k = math.prod(self.in_shape)
    rows = x.reshape(-1, k)
    if self._kernel_applies(k):
      out = dequant_matmul(rows, self.packed, self.scales, self.zeros, bits=self.bits,
                           group_size=self.group_size)
    else:
      out = mixed_einsum("mk,kn->mn", rows, dequantize_weight(self).reshape(k, -1),
                         compute_dtype)
    return out.reshape(*x.shape[:x.ndim - len(self.in_shape)], *self.out_shape)

  def _kernel_applies(self, k: int) -> bool:
    impl = _MATMUL.get()
    if impl == "xla" or (impl == "auto" and backend_name() != "gpu"):
      return False
    return self.bits in (4, 8) and (self.group_size or k) % 32 == 0 and self.packed.ndim == 2


def unpack_jnp(packed, bits: int, count: int):
  """jnp version of llm.quant.pack.unpack (traced; int32 result)."""
  packed = packed.astype(jnp.int32)
  if bits == 8:
    return packed[..., :count]
  if bits == 4:  # two per byte: low nibble first
    pair = jnp.stack([packed & 15, packed >> 4], axis=-1)
    return pair.reshape(*packed.shape[:-1], -1)[..., :count]
  planes = (packed[..., None] >> jnp.arange(8)) & 1
  planes = planes.reshape(*packed.shape[:-1], -1)[..., :count * bits]
  planes = planes.reshape(*packed.shape[:-1], count, bits)
  return jnp.sum(planes << jnp.arange(bits), axis=-1)


def dequantize_weight(w: QuantizedWeight):
  """The float32 weight [..., *in_shape, *out_shape]."""
  n_in = math.prod(w.in_shape)
  q = unpack_jnp(w.packed, w.bits, n_in).astype(jnp.float32)  # [..., out, in]
  width = w.group_size or n_in
  scales = jnp.repeat(w.scales, width, axis=-1, total_repeat_length=n_in)
  zeros = jnp.repeat(w.zeros, width, axis=-1, total_repeat_length=n_in)
  dense = scales * (q - zeros)
  lead = dense.shape[:-2]
  dense = jnp.swapaxes(dense, -1, -2)  # [..., in, out]
  return dense.reshape(*lead, *w.in_shape, *w.out_shape)


def from_integers(q: np.ndarray, scales, zeros, bits: int, group_size: int, in_shape,
                  out_shape) -> QuantizedWeight:
  """Packs grid integers q [..., out, in] (GPTQ's layout) with their scales and zeros."""
  return QuantizedWeight(jnp.asarray(pack(q, bits)), jnp.asarray(scales, jnp.float32),
                         jnp.asarray(zeros, jnp.float32), bits, group_size, tuple(in_shape),
                         tuple(out_shape))


def as_matrix(weight: np.ndarray, n_in: int) -> np.ndarray:
  """A float weight [*in_shape, *out_shape] as GPTQ's [out, in] matrix."""
  return np.asarray(weight).reshape(math.prod(weight.shape[:n_in]), -1).T


def memory_bytes(params) -> dict:
  """Bytes of a parameter tree as it is held, against the same model in float32 and bfloat16;
  `linear_*` counts only the weights that are quantized."""
  leaves = jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, QuantizedWeight))
  quantized = [x for x in leaves if isinstance(x, QuantizedWeight)]
  held = sum(x.nbytes for x in leaves)  # arrays report it without a copy to the host
  values = sum(math.prod(x.shape) for x in leaves)
  linear = sum(math.prod(x.shape) for x in quantized)
  return {"held": int(held), "float32": 4 * values, "bfloat16": 2 * values,
          "linear_held": int(sum(x.nbytes for x in quantized)), "linear_float32": 4 * linear,
          "linear_bfloat16": 2 * linear}

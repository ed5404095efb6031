"""Small numerical helpers shared by the layers: mixed-precision matmul and dtype lookup."""

import functools

import jax
import jax.numpy as jnp

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# "auto": bfloat16 on GPUs and TPUs, float32 on CPU; float16 trains with dynamic loss scaling
DTYPES = ("auto", *_DTYPES)


def dtype_of(name: str):
  """Maps a config dtype name to the jnp dtype; "auto" is bfloat16 on accelerators, float32 on
  CPU."""
  if name == "auto":
    return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
  return _DTYPES[name]


def dtype_name(name: str) -> str:
  """The concrete dtype name a config name stands for ("auto" resolved)."""
  return jnp.dtype(dtype_of(name)).name


def mixed_einsum(equation: str, x, w, compute_dtype):
  """Einsum with both operands cast to `compute_dtype`, accumulating and returning float32.

  In low precision the backward pass casts the incoming gradient to `compute_dtype` too, so all
  three matmuls of a layer run as low-precision products with float32 accumulation. The
  backward is written out as two einsums in every precision: on CPU, XLA lays out autodiff's
  transposed products with extra copies, and the explicit form trains `small` ~17% faster in
  float32 (`experiments/bench/train_profile.py`).
  """
  return _low_precision_einsum(equation, jnp.dtype(compute_dtype), x, w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _low_precision_einsum(equation, compute_dtype, x, w):
  return jnp.einsum(equation, x.astype(compute_dtype), w.astype(compute_dtype),
                    preferred_element_type=jnp.float32)


def _forward(equation, compute_dtype, x, w):
  xc, wc = x.astype(compute_dtype), w.astype(compute_dtype)
  out = jnp.einsum(equation, xc, wc, preferred_element_type=jnp.float32)
  # zero-size arrays carry the input dtypes (residuals must be arrays)
  return out, (xc, wc, jnp.zeros((0,), x.dtype), jnp.zeros((0,), w.dtype))


def _backward(equation, compute_dtype, residuals, grad):
  # Valid for equations where every index of one operand appears in the other or the output,
  # which holds for all projections in this model.
  xc, wc, x_like, w_like = residuals
  inputs, out = equation.split("->")
  x_idx, w_idx = inputs.split(",")
  grad = grad.astype(compute_dtype)
  dx = jnp.einsum(f"{out},{w_idx}->{x_idx}", grad, wc, preferred_element_type=jnp.float32)
  dw = jnp.einsum(f"{x_idx},{out}->{w_idx}", xc, grad, preferred_element_type=jnp.float32)
  return dx.astype(x_like.dtype), dw.astype(w_like.dtype)


_low_precision_einsum.defvjp(_forward, _backward)

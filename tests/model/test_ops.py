"""Mixed-precision einsum: low-precision products, float32 accumulation, in both passes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.model.ops import mixed_einsum


def _round(x, dtype):
  """x rounded to `dtype`, with an identity gradient (plain casts would round the gradient)."""
  return x + jax.lax.stop_gradient(x.astype(dtype).astype(jnp.float32) - x)


@pytest.mark.parametrize("equation,x_shape,w_shape", [
    ("btd,dm->btm", (2, 3, 8), (8, 5)),
    ("btd,dhk->bthk", (2, 3, 8), (8, 2, 4)),
    ("bthk,hkd->btd", (2, 3, 2, 4), (2, 4, 8)),
    ("btd,vd->btv", (2, 3, 8), (6, 8)),
])
@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_gradients_equal_float32_math_on_rounded_operands(equation, x_shape, w_shape, dtype):
  kx, kw, kc = jax.random.split(jax.random.key(0), 3)
  x, w = jax.random.normal(kx, x_shape), jax.random.normal(kw, w_shape)
  out_shape = jnp.einsum(equation, x, w).shape
  weights = _round(jax.random.normal(kc, out_shape), dtype)  # exactly representable cotangent

  def loss(x, w):
    return jnp.sum(mixed_einsum(equation, x, w, dtype) * weights)

  def reference(x, w):
    return jnp.sum(jnp.einsum(equation, _round(x, dtype), _round(w, dtype),
                              precision="highest") * weights)

  assert mixed_einsum(equation, x, w, dtype).dtype == jnp.float32
  np.testing.assert_allclose(loss(x, w), reference(x, w), rtol=1e-5)
  got = jax.grad(loss, argnums=(0, 1))(x, w)
  want = jax.grad(reference, argnums=(0, 1))(x, w)
  for g, r in zip(got, want):
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)

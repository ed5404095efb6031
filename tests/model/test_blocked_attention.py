"""The blocked attention's output and hand-written gradients against autodiff of dense attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.model.attention import _dense_attention, attention_mask
from llm.model.blocked_attention import blocked_attention


def _inputs(dtype, b=2, t=48, h=4, kv=2, d=8):
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  q, k, v = (jax.random.normal(key, (b, t, n, d)).astype(dtype)
             for key, n in zip(keys, (h, kv, kv)))
  positions = np.tile(np.arange(t), (b, 1))
  segments = np.ones((b, t), np.int32)
  segments[1, 20:] = 2  # two packed documents in the second row
  positions[1, 20:] -= 20
  mask = attention_mask(jnp.asarray(positions), jnp.asarray(positions),
                        jnp.asarray(segments), jnp.asarray(segments))
  weights = jax.random.normal(keys[3], (b, t, h, d))
  return q, k, v, mask, weights


def _loss(attend, q, k, v, mask, weights):
  return jnp.sum(attend(q, k, v, mask).astype(jnp.float32) * weights)


@pytest.mark.parametrize("block", [16, 20, 48])
def test_matches_dense_attention_and_its_gradients(block):
  q, k, v, mask, weights = _inputs(jnp.float32)
  ours = lambda q, k, v, m: blocked_attention(q, k, v, m, block)
  np.testing.assert_allclose(ours(q, k, v, mask), _dense_attention(q, k, v, mask),
                             atol=2e-6, rtol=2e-6)
  grads = jax.grad(_loss, argnums=(1, 2, 3))(ours, q, k, v, mask, weights)
  want = jax.grad(_loss, argnums=(1, 2, 3))(_dense_attention, q, k, v, mask, weights)
  for got, ref in zip(grads, want):
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=2e-5)


def test_bfloat16_within_bfloat16_error():
  q, k, v, mask, weights = _inputs(jnp.bfloat16)
  exact = [x.astype(jnp.float32) for x in (q, k, v)]
  ours = lambda q, k, v, m: blocked_attention(q, k, v, m, 16)
  got = jax.grad(_loss, argnums=(1, 2, 3))(ours, q, k, v, mask, weights)
  want = jax.grad(_loss, argnums=(1, 2, 3))(_dense_attention, *exact, mask, weights)
  for g, w in zip(got, want):
    assert g.dtype == jnp.bfloat16
    err = np.abs(np.asarray(g, np.float32) - np.asarray(w))
    assert err.max() < 0.05 * np.abs(np.asarray(w)).max()

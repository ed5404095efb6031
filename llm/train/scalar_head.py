"""A scalar read off the decoder's final hidden states: reward-model scores, PPO values."""

import jax
import jax.numpy as jnp


def init_scalar_head(d_model: int) -> dict:
  """Zero weights and bias: the head starts by scoring everything 0."""
  return {"w": jnp.zeros((d_model,), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def scalar_head(head: dict, features: jax.Array, at: jax.Array | None = None) -> jax.Array:
  """features [batch, seq, d] -> [batch, seq] scores, or [batch] at index `at` [batch] of each
  row (e.g. its last real token)."""
  if at is not None:
    features = jnp.take_along_axis(features, at[:, None, None], axis=1)[:, 0]
  return features @ head["w"] + head["b"]

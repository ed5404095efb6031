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


class LastTokenScores:
  """For a ModelTask whose parameters are the decoder ("model") plus a scalar head ("head")
  read at each row's last real token: the reward model, the safety guard."""

  def init(self, rng):
    from llm.train.partition import split_trainable
    full = {"model": self.model_params(rng),
            "head": init_scalar_head(self.config.model.d_model)}
    return split_trainable(full, self.config.train.trainable)

  def last_features(self, params, rows):
    """[rows, d_model]: each row's final hidden state at its last real token."""
    features = self.model(params["model"]).features(rows["inputs"], rows["positions"],
                                                    rows["segment_ids"])
    return jnp.take_along_axis(features, rows["last"][:, None, None], axis=1)[:, 0]

  def scores(self, params, rows):
    """One scalar per row, from the last real token's final hidden state."""
    return scalar_head(params["head"], self.last_features(params, rows))

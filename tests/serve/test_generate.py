"""Cached generation equals a naive loop that reruns the full forward pass per token."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model import build_model
from llm.serve.generate import generate, sample_token
from tests.conftest import micro_config


def test_greedy_generation_matches_full_forward_argmax():
  model = build_model(micro_config().model)
  graphdef, params = nnx.split(model, nnx.Param)
  prompt = jax.random.randint(jax.random.key(0), (2, 4), 0, 64)
  got = generate(graphdef, nnx.to_pure_dict(params), prompt, jax.random.key(1),
                 max_new_tokens=6, temperature=0.0)
  tokens = prompt
  for _ in range(6):
    next_token = jnp.argmax(model(tokens)[:, -1], axis=-1)
    tokens = jnp.concatenate([tokens, next_token[:, None]], axis=1)
  np.testing.assert_array_equal(got, tokens[:, 4:])


def test_top_k_never_samples_outside_the_k_best():
  logits = jnp.tile(jnp.arange(10.0)[None], (500, 1))
  samples = sample_token(logits, jax.random.key(0), temperature=1.0, top_k=3)
  assert set(np.asarray(samples).tolist()) == {7, 8, 9}

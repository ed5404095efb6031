"""Cached generation equals a naive loop that reruns the full forward pass per token."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model import build_model
from llm.model.sampling import complete, complete_many, generate, sample_token
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


def test_padded_prompts_continue_exactly_like_unpadded_ones():
  model = build_model(micro_config().model)
  graphdef, params = nnx.split(model, nnx.Param)
  params = nnx.to_pure_dict(params)
  for ids in ([5, 9, 2], [7, 1, 3, 3, 8, 2, 6]):
    exact = generate(graphdef, params, jnp.asarray([ids], jnp.int32), jax.random.key(0),
                     max_new_tokens=5, temperature=0.0)[0].tolist()
    assert complete(graphdef, params, ids, 5, bucket=8) == exact
    stop = exact[2]
    assert complete(graphdef, params, ids, 5, bucket=8, stop_ids=(stop,)) == \
        exact[:exact.index(stop)]
    assert complete(graphdef, params, ids, 5, bucket=8, stop_ids=(stop,), keep_stop=True) == \
        exact[:exact.index(stop) + 1]


def test_a_batch_of_prompts_of_different_lengths_continues_like_each_alone():
  model = build_model(micro_config().model)
  graphdef, params = nnx.split(model, nnx.Param)
  params = nnx.to_pure_dict(params)
  rng = np.random.default_rng(3)
  prompts = [rng.integers(1, 64, size=n).tolist() for n in (3, 7, 12, 5, 9)]
  alone = [generate(graphdef, params, jnp.asarray([p], jnp.int32), jax.random.key(0),
                    max_new_tokens=6, temperature=0.0)[0].tolist() for p in prompts]
  assert complete_many(graphdef, params, prompts, 6, batch_size=4, bucket=8) == alone
  stop = alone[1][2]
  cut = complete_many(graphdef, params, prompts, 6, batch_size=4, bucket=8, stop_ids=(stop,))
  assert cut == [a[:a.index(stop)] if stop in a else a for a in alone]

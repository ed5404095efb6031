"""Device sampling against numpy: top-k/top-p filtering, the drawn distribution, greedy."""

import jax
import jax.numpy as jnp
import numpy as np

from llm.serve.sampler import SamplingArrays, _draw, _filter_top_k_top_p, sample


def _numpy_filter(row, top_k, top_p):
  order = np.argsort(-row, kind="stable")
  keep = np.zeros(row.shape, bool)
  k = top_k if top_k > 0 else row.size
  keep[order[:k]] = True
  probs = np.exp(row - row.max())
  probs /= probs.sum()
  mass_before = np.cumsum(probs[order]) - probs[order]
  nucleus = np.zeros(row.shape, bool)
  nucleus[order[mass_before < top_p]] = True
  return keep & nucleus


def test_top_k_and_top_p_keep_the_same_tokens_as_a_sort():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 3, (6, 500)).astype(np.float32)
  top_k = np.array([0, 1, 7, 50, 0, 20], np.int32)
  top_p = np.array([0.5, 1.0, 1.0, 0.9, 0.99, 0.3], np.float32)
  kept = np.isfinite(np.asarray(_filter_top_k_top_p(jnp.asarray(logits), top_k, top_p)))
  for row in range(6):
    np.testing.assert_array_equal(kept[row], _numpy_filter(logits[row], top_k[row],
                                                           top_p[row]), err_msg=str(row))


def test_draws_follow_the_softmax_and_never_pick_filtered_tokens():
  logits = jnp.asarray([[2.0, 1.0, 0.0, -jnp.inf, 0.5]])
  keys = jax.random.split(jax.random.key(0), 20000)
  tokens = np.asarray(jax.vmap(lambda k: _draw(logits, k[None])[0])(keys))
  expected = np.asarray(jax.nn.softmax(logits[0]))
  freq = np.bincount(tokens, minlength=5) / tokens.size
  assert freq[3] == 0
  np.testing.assert_allclose(freq, expected, atol=0.012)  # ~4 standard errors


def test_greedy_rows_take_the_argmax_and_banned_ids_are_skipped():
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(3, 40)), jnp.float32)
  best = np.argsort(-np.asarray(logits), axis=-1)
  banned = np.full((3, 2), 40, np.int32)
  banned[1, 0] = best[1, 0]
  arrays = SamplingArrays(jnp.zeros(3), jnp.ones(3), jnp.zeros(3, jnp.int32),
                          jnp.zeros(3, jnp.uint32), jnp.zeros(3, jnp.int32), banned,
                          jnp.asarray([True, False, False]))
  out = sample(logits, arrays)
  assert out.tokens.tolist() == [best[0, 0], best[1, 1], best[2, 0]]
  np.testing.assert_allclose(out.logprob, jax.nn.log_softmax(logits)[np.arange(3), out.tokens],
                             atol=1e-6)

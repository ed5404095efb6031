"""Perplexity helpers against direct formulas."""

import math

import jax
import numpy as np

from llm.train.perplexity import model_perplexity, unigram_perplexity


def test_unigram_perplexity_formula():
  train = {"targets": np.array([[1, 1, 2, 0]]), "loss_mask": np.array([[1, 1, 1, 0]])}
  heldout = {"targets": np.array([[1, 2]]), "loss_mask": np.array([[1, 1]])}
  probs = np.array([1, 3, 2, 1]) / 7.0  # add-one counts over a 4-token vocab
  expected = math.exp(-(math.log(probs[1]) + math.log(probs[2])) / 2)
  assert unigram_perplexity(train, heldout, 4) == np.float64(expected)


def test_model_perplexity_of_uniform_logits_is_vocab_size():
  rows = {"inputs": np.zeros((5, 4), np.int32), "targets": np.ones((5, 4), np.int32),
          "positions": np.zeros((5, 4), np.int32), "segment_ids": np.ones((5, 4), np.int32),
          "loss_mask": np.ones((5, 4), np.int32)}
  uniform = lambda inputs, positions, segments: jax.numpy.zeros(inputs.shape + (17,))
  result = model_perplexity(uniform, rows, batch_size=2)
  assert result["tokens"] == 20
  np.testing.assert_allclose(result["perplexity"], 17.0, rtol=1e-5)

"""Synthetic packed rows for loop tests."""

import numpy as np

from llm.data.packing import pack_documents


def random_rows(num_docs: int, seq_len: int, vocab: int, seed: int = 0):
  """Packed rows from random documents of 3..40 tokens (ids 4.. so specials stay free)."""
  rng = np.random.default_rng(seed)
  docs = [rng.integers(4, vocab, size=rng.integers(3, 40)).tolist() for _ in range(num_docs)]
  return pack_documents(docs, seq_len, eos_id=3)

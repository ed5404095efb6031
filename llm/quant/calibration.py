"""Calibration windows for quantization: N windows of L tokens of packaged text, seeded.

Documents come from the source's training split (never its held-out 2%, which the
perplexity table reads), tokenized and joined with the end-of-text token between them.
"""

import numpy as np

from llm.data.curation.heldout import is_heldout
from llm.data.curation.sources import load_documents


def calibration_windows(tokenizer, source: str = "shakespeare", windows: int = 128,
                        length: int = 256, seed: int = 0, chars: int = 2_000_000) -> np.ndarray:
  """int32 [windows, length]: windows at random offsets of the joined token stream."""
  stream = []
  for doc in load_documents(source, chars):
    if not is_heldout(doc["id"], 0.02):
      stream += tokenizer.encode(doc["text"]) + [tokenizer.eos_id]
    if len(stream) >= 4 * windows * length:
      break
  if len(stream) <= length:
    raise ValueError(f"{source!r} gave {len(stream)} tokens; calibration needs more than "
                     f"one window of {length}: raise chars or pick another source")
  starts = np.random.default_rng(seed).integers(0, len(stream) - length, windows)
  stream = np.asarray(stream, np.int32)
  return np.stack([stream[s:s + length] for s in starts])

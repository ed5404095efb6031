"""Fill-in-the-middle (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in
the Middle"), with StarCoder's token layout.

With probability `rate` a document is cut at two character positions drawn uniformly into
prefix, middle and suffix, and rearranged:
  PSM: <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle
  SPM: <fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle   (probability `spm_rate`)
so the model learns to write the middle after seeing both sides. It is applied to text before
packing; the packer adds the document's EOS.
"""

from typing import Sequence

import numpy as np

from llm.tokenizer.base import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, Tokenizer

MODES = ("none", "psm", "spm")


def fim_document(text: str, tokenizer: Tokenizer, rng: np.random.Generator, rate: float,
                 spm_rate: float) -> tuple[list[int], str]:
  """(ids, mode) of one document: plain ids, or a PSM/SPM rearrangement."""
  if len(text) < 2 or rng.random() >= rate:
    return tokenizer.encode(text), "none"
  lo, hi = sorted(int(x) for x in rng.integers(0, len(text) + 1, size=2))
  prefix, middle, suffix = text[:lo], text[lo:hi], text[hi:]
  pre, mid, suf = (tokenizer.special_id(t) for t in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX))
  if rng.random() < spm_rate:
    ids = [pre, suf] + tokenizer.encode(suffix) + [mid] + tokenizer.encode(prefix + middle)
    return ids, "spm"
  ids = ([pre] + tokenizer.encode(prefix) + [suf] + tokenizer.encode(suffix) + [mid] +
         tokenizer.encode(middle))
  return ids, "psm"


def restore_document(ids: Sequence[int], tokenizer: Tokenizer) -> str:
  """The original text of a `fim_document` sample, in any mode (for checks and evals)."""
  ids = list(ids)
  pre, mid, suf = (tokenizer.special_id(t) for t in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX))
  if not ids or ids[0] != pre:
    return tokenizer.decode(ids)
  m = ids.index(mid)
  if ids[1] == suf:  # SPM: suffix, then prefix + middle
    return tokenizer.decode(ids[m + 1:]) + tokenizer.decode(ids[2:m])
  s = ids.index(suf)
  return tokenizer.decode(ids[1:s]) + tokenizer.decode(ids[m + 1:]) + tokenizer.decode(ids[s + 1:m])

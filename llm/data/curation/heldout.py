"""The held-out split: a stable choice by document id, shared by every stage that evaluates."""

import zlib


def is_heldout(doc_id: str, fraction: float) -> bool:
  """A stable split by document id, so held-out text never leaks into training."""
  return zlib.crc32(doc_id.encode()) / 2**32 < fraction

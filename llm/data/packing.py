"""Packing tokenized documents into fixed-length rows with segment ids, positions and a loss mask.

Documents are concatenated (each framed by BOS ... EOS) and cut into rows of seq_len + 1 tokens.
Within a row each document gets its own segment id (1, 2, ...; 0 is padding) and positions
restart at 0, so attention and RoPE see every document as if it were alone. A target is
trained on only when it belongs to the same document as its input token.
"""

import os

import numpy as np

ROW_KEYS = ("inputs", "targets", "segment_ids", "positions", "loss_mask")


def _segment_positions(segment_ids: np.ndarray) -> np.ndarray:
  """Position of each token within its segment, for one row."""
  starts = np.r_[True, segment_ids[1:] != segment_ids[:-1]]
  index = np.arange(len(segment_ids))
  return index - np.maximum.accumulate(np.where(starts, index, 0))


def pack_documents(docs: list[list[int]], seq_len: int, eos_id: int, pad_id: int = 0,
                   bos_id: int | None = None) -> dict[str, np.ndarray]:
  """Greedy concat-and-chunk packing -> dict of int32 arrays [rows, seq_len] (ROW_KEYS).

  Each document becomes [bos] doc [eos] (bos only when `bos_id` is given), so the first real
  token is trained as a prediction from bos, as generation later starts from bos.
  """
  tokens, doc_index = [], []
  for i, doc in enumerate(docs):
    framed = ([] if bos_id is None else [bos_id]) + list(doc) + [eos_id]
    tokens.extend(framed)
    doc_index.extend([i + 1] * len(framed))
  width = seq_len + 1
  n_rows = -(-len(tokens) // width)
  pad = n_rows * width - len(tokens)
  tokens = np.array(tokens + [pad_id] * pad, np.int32).reshape(n_rows, width)
  doc_index = np.array(doc_index + [0] * pad, np.int64).reshape(n_rows, width)
  rows = {key: np.zeros((n_rows, seq_len), np.int32) for key in ROW_KEYS}
  for r in range(n_rows):
    # renumber documents 1.. within the row; padding (doc 0) stays 0
    _, seg = np.unique(doc_index[r], return_inverse=True)
    seg = seg + (1 if doc_index[r].min() > 0 else 0)
    seg = np.where(doc_index[r] == 0, 0, seg).astype(np.int32)
    rows["inputs"][r] = tokens[r, :-1]
    rows["targets"][r] = tokens[r, 1:]
    rows["segment_ids"][r] = seg[:-1]
    rows["positions"][r] = _segment_positions(seg[:-1])
    rows["loss_mask"][r] = (seg[:-1] == seg[1:]) & (seg[:-1] > 0)
  return rows


def save_rows(path: str, rows: dict[str, np.ndarray]) -> None:
  """Writes packed rows atomically (temp file, then rename)."""
  tmp = f"{path}.tmp.npz"
  np.savez(tmp, **rows)
  os.replace(tmp, path)


def load_rows(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {key: f[key] for key in ROW_KEYS}

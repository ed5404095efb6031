"""Packing against a naive token-by-token reconstruction."""

import numpy as np

from llm.data.packing import load_rows, pack_documents, save_rows

EOS = 3


def test_packing_preserves_every_token_and_document_boundary():
  docs = [[10, 11, 12], [20, 21, 22, 23, 24, 25, 26], [30], [40, 41, 42, 43]]
  rows = pack_documents(docs, seq_len=5, eos_id=EOS)
  # Rows hold seq_len + 1 tokens each; inputs/targets are the two shifted views.
  stream = [t for d in docs for t in d + [EOS]]
  width = 6
  for r in range(len(rows["inputs"])):
    chunk = stream[r * width:(r + 1) * width]
    chunk += [0] * (width - len(chunk))
    assert rows["inputs"][r].tolist() == chunk[:-1]
    assert rows["targets"][r].tolist() == chunk[1:]
  assert rows["segment_ids"][0].tolist() == [1, 1, 1, 1, 2]
  assert rows["positions"][0].tolist() == [0, 1, 2, 3, 0]
  # input EOS of doc 1 -> first token of doc 2 is not trained; doc 2's last token -> EOS is.
  assert rows["loss_mask"][0].tolist() == [1, 1, 1, 0, 1]


def test_padding_is_segment_zero_and_untrained():
  rows = pack_documents([[5, 6, 7]], seq_len=8, eos_id=EOS)
  assert rows["segment_ids"][0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
  assert rows["loss_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_loss_mask_equals_naive_same_document_rule():
  rng = np.random.default_rng(0)
  docs = [rng.integers(4, 50, size=rng.integers(1, 30)).tolist() for _ in range(40)]
  rows = pack_documents(docs, seq_len=16, eos_id=EOS)
  doc_of_token = [i + 1 for i, d in enumerate(docs) for _ in range(len(d) + 1)]
  width = 17
  for r in range(len(rows["inputs"])):
    ids = doc_of_token[r * width:(r + 1) * width]
    ids += [0] * (width - len(ids))
    expected = [int(ids[j] == ids[j + 1] and ids[j] > 0) for j in range(16)]
    assert rows["loss_mask"][r].tolist() == expected


def test_save_and_load_round_trip(tmp_path):
  rows = pack_documents([[5, 6], [7, 8, 9]], seq_len=4, eos_id=EOS)
  save_rows(str(tmp_path / "rows.npz"), rows)
  loaded = load_rows(str(tmp_path / "rows.npz"))
  for key in rows:
    np.testing.assert_array_equal(loaded[key], rows[key])
  assert [p.name for p in tmp_path.iterdir()] == ["rows.npz"]


def test_bos_frames_each_document_and_its_first_token_is_trained():
  rows = pack_documents([[5, 6], [7]], seq_len=7, eos_id=EOS, bos_id=2)
  assert rows["inputs"][0].tolist() == [2, 5, 6, 3, 2, 7, 3]
  assert rows["targets"][0].tolist() == [5, 6, 3, 2, 7, 3, 0]
  assert rows["loss_mask"][0].tolist() == [1, 1, 1, 0, 1, 1, 0]
  assert rows["positions"][0].tolist() == [0, 1, 2, 3, 0, 1, 2]

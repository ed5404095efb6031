"""Multi-process tokenization into packed array_record rows: nothing dropped, the same bytes
for any number of workers, FIM applied, readable by the loader."""

import numpy as np
import pytest

from llm.data.loader import train_batches
from llm.data.packing import pack_documents
from llm.data.curation.sources import load_documents
from llm.data.tokenize_pack import PackSettings, PackedRows, tokenize_and_pack


@pytest.fixture(scope="module")
def texts():
  return [d["text"] for source in ("shakespeare", "python_stdlib")
          for d in load_documents(source, 120_000)]


def test_packed_rows_hold_every_token_and_match_in_process_packing(small_tokenizer, texts,
                                                                   tmp_path):
  settings = PackSettings(seq_len=256)
  manifest = tokenize_and_pack(texts, small_tokenizer.path, str(tmp_path / "a"), settings,
                               shards=4, workers=2)
  ids = [small_tokenizer.encode(t) for t in texts]
  assert max(map(len, ids)) > 256  # some documents are longer than a row: split, not dropped
  assert manifest["tokens"] == sum(map(len, ids))
  rows = PackedRows(str(tmp_path / "a"))
  assert len(rows) == manifest["rows"]
  # A row holds seq_len + 1 tokens: its inputs and, as the last target, one more.
  held = sum(int(np.count_nonzero(rows[i]["inputs"])) + int(rows[i]["targets"][-1] != 0)
             for i in range(len(rows)))
  assert held == sum(len(x) + 2 for x in ids)  # every token, with its BOS and EOS
  real = sum(int((rows[i]["segment_ids"] > 0).sum()) for i in range(len(rows)))
  assert manifest["packing_efficiency"] == pytest.approx(real / (len(rows) * 256))
  size = -(-len(texts) // 4)
  expected = pack_documents(ids[:size], 256, small_tokenizer.eos_id, small_tokenizer.pad_id,
                            small_tokenizer.bos_id)
  for r in range(len(expected["inputs"])):
    for key, value in expected.items():
      np.testing.assert_array_equal(rows[r][key], value[r])
  batch = next(train_batches(rows, batch_size=4, seed=0))
  assert batch["inputs"].shape == (4, 256)


def test_output_does_not_depend_on_workers_and_fim_is_applied(small_tokenizer, texts, tmp_path):
  settings = PackSettings(seq_len=128, fim_rate=0.5, fim_spm_rate=0.5, seed=3)
  one = tokenize_and_pack(texts, small_tokenizer.path, str(tmp_path / "one"), settings,
                          shards=3, workers=1)
  two = tokenize_and_pack(texts, small_tokenizer.path, str(tmp_path / "two"), settings,
                          shards=3, workers=2)
  for shard in one["shards"]:
    assert (tmp_path / "one" / shard).read_bytes() == (tmp_path / "two" / shard).read_bytes()
  layouts = one["layouts"]
  assert layouts == two["layouts"] and layouts["psm"] > 0 and layouts["spm"] > 0
  assert sum(layouts.values()) == len(texts)


def test_missing_manifest_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="tokenize_and_pack"):
    PackedRows(str(tmp_path))


def test_conversations_are_packed_with_their_chat_template(small_tokenizer, tmp_path):
  from llm.tokenizer.base import IM_START
  from llm.tokenizer.chat import render_chat
  chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
  manifest = tokenize_and_pack(["Plain text.", chat], small_tokenizer.path, str(tmp_path),
                               PackSettings(seq_len=64), shards=1)
  assert manifest["layouts"]["chat"] == 1 and manifest["layouts"]["none"] == 1
  row = PackedRows(str(tmp_path))[0]
  chat_ids = render_chat(small_tokenizer, chat)[0]
  tokens = row["inputs"][row["segment_ids"] == 2].tolist()
  assert tokens[1:1 + len(chat_ids)] == chat_ids  # after its BOS
  assert small_tokenizer.special_id(IM_START) in tokens

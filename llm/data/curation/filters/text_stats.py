"""Text statistics shared by the quality filters: words, lines, paragraphs and n-grams.

Words are language-aware. Chinese and Japanese ("zh", "ja") do not separate words with
spaces, so there every CJK character (ideograph or kana) counts as one word and CJK
punctuation separates words; other text between them is split at whitespace. For all other
languages a word is a whitespace-separated token, kept as written (punctuation included), so
that tokens such as "-" or "|" count as words without letters.
"""

import collections
import functools
import re
import unicodedata

import numpy as np

CJK_LANGS = frozenset({"zh", "ja"})

TERMINAL_PUNCT = (".", "!", "?", '"', "'", "\u201d", "\u2019")  # ASCII and curly end quotes
CJK_TERMINAL_PUNCT = ("\u3002", "\uff01", "\uff1f", "\u300d", "\u300f")  # 。！？」』

_CJK_CHAR = (r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
             r"\U00020000-\U0002fa1f")
# CJK symbols and punctuation (、。「」…), full-width forms (！，？) and the ellipsis.
_CJK_PUNCT = r"\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\u2026"
_CJK_TOKEN = re.compile(rf"[{_CJK_CHAR}]|[^\s{_CJK_CHAR}{_CJK_PUNCT}]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def is_cjk(lang: str) -> bool:
  """True for languages written without spaces between words (Chinese, Japanese)."""
  return lang in CJK_LANGS


def word_list(text: str, lang: str = "en") -> list[str]:
  """Words of `text`: CJK characters one by one for "zh"/"ja", whitespace tokens otherwise."""
  return _CJK_TOKEN.findall(text) if is_cjk(lang) else text.split()


@functools.lru_cache(maxsize=4)  # rules of one document share these
def split_words(text: str, lang: str = "en") -> tuple[str, ...]:
  """`word_list`, cached for the few texts in use (the rules of one document)."""
  return tuple(word_list(text, lang))


@functools.lru_cache(maxsize=1 << 17)
def strip_punct(word: str) -> str:
  """The word without leading and trailing punctuation or symbols."""
  start, end = 0, len(word)
  while start < end and unicodedata.category(word[start])[0] in "PS":
    start += 1
  while end > start and unicodedata.category(word[end - 1])[0] in "PS":
    end -= 1
  return word[start:end]


@functools.lru_cache(maxsize=1 << 17)
def _normalized_word(word: str) -> str:
  return strip_punct(word).lower()  # cached: word frequencies are Zipfian


@functools.lru_cache(maxsize=1 << 17)
def stripped_length(word: str) -> int:
  """Length of the word without its edge punctuation."""
  return len(strip_punct(word))


@functools.lru_cache(maxsize=1 << 17)
def has_letter(word: str) -> bool:
  """True when the word contains at least one alphabetic character."""
  return any(ch.isalpha() for ch in word)


@functools.lru_cache(maxsize=4)  # rules of one document share these
def normalized_words(text: str, lang: str = "en") -> tuple[str, ...]:
  """Lower-cased words without edge punctuation; tokens that were only punctuation are dropped."""
  return tuple(filter(None, map(_normalized_word, split_words(text, lang))))


@functools.lru_cache(maxsize=4)  # rules of one document share these
def split_lines(text: str) -> tuple[str, ...]:
  """Non-empty lines, stripped of surrounding whitespace."""
  return tuple(stripped for stripped in map(str.strip, text.splitlines()) if stripped)


@functools.lru_cache(maxsize=4)  # rules of one document share these
def split_paragraphs(text: str) -> tuple[str, ...]:
  """Non-empty paragraphs (separated by blank lines), stripped."""
  paragraphs = map(str.strip, _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")))
  return tuple(p for p in paragraphs if p)


def terminal_punct(lang: str, base: tuple[str, ...] = TERMINAL_PUNCT) -> tuple[str, ...]:
  """Sentence-ending marks for `lang`: `base`, plus 。！？」』 for Chinese and Japanese."""
  return base + CJK_TERMINAL_PUNCT if is_cjk(lang) else base


def duplicate_fractions(items: list[str]) -> tuple[float, float]:
  """(fraction of items, fraction of characters) in items that repeat an earlier item."""
  seen, dup_items, dup_chars = set(), 0, 0
  for item in items:
    if item in seen:
      dup_items += 1
      dup_chars += len(item)
    else:
      seen.add(item)
  total_chars = sum(len(item) for item in items)
  return (dup_items / len(items) if items else 0.0,
          dup_chars / total_chars if total_chars else 0.0)


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
  """All contiguous n-grams of `words`, in order."""
  return list(zip(*(words[i:] for i in range(n))))


class NgramRepetition:
  """Character fractions covered by repeated word n-grams, for n = 2, 3, ... of one text.

  n-grams get exact ids, built up one word at a time (the id of an n-gram is the
  unique pair of its (n-1)-gram prefix's id and its last word's id), so equal ids mean equal
  n-grams, with no hashing. Characters are those of the words; an overlap counts once.
  """

  def __init__(self, words: list[str]):
    index: dict[str, int] = {}  # word -> position of its first occurrence: a unique id
    self.word_ids = np.fromiter(map(index.setdefault, words, range(len(words))), np.int64,
                                len(words))
    self.lengths = np.fromiter(map(len, words), np.int64, len(words))
    self.total = int(self.lengths.sum())
    self._ids = {1: self.word_ids}

  def gram_ids(self, n: int) -> np.ndarray:
    """[len(words) - n + 1] dense ids of the n-grams, in order."""
    if n not in self._ids:
      prefix = self.gram_ids(n - 1)[:-1]
      pairs = prefix * (len(self.word_ids) + 1) + self.word_ids[n - 1:]
      self._ids[n] = np.unique(pairs, return_inverse=True)[1].reshape(-1)
    return self._ids[n]

  def _covered(self, starts: np.ndarray, n: int) -> float:
    edges = np.zeros(len(self.word_ids) + 1, np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, starts + n, -1)
    covered = np.cumsum(edges[:-1]) > 0
    return float(self.lengths[covered].sum()) / self.total if self.total else 0.0

  def top_fraction(self, n: int) -> float:
    """Characters covered by the most frequent n-gram (ties: the one seen first); 0 when no
    n-gram repeats."""
    if len(self.word_ids) < n:
      return 0.0
    ids = self.gram_ids(n)
    counts = np.bincount(ids)
    if counts.max() < 2:
      return 0.0
    first_seen = np.full(len(counts), len(ids))
    np.minimum.at(first_seen, ids, np.arange(len(ids)))
    top = np.flatnonzero(counts == counts.max())
    top = top[np.argmin(first_seen[top])]
    return self._covered(np.flatnonzero(ids == top), n)

  def duplicate_fraction(self, n: int) -> float:
    """Characters covered by n-grams that occur more than once."""
    if len(self.word_ids) < n:
      return 0.0
    ids = self.gram_ids(n)
    return self._covered(np.flatnonzero(np.bincount(ids)[ids] > 1), n)


def top_ngram_char_fraction(words: list[str], n: int) -> float:
  """Fraction of characters covered by the most frequent n-gram (0 when none repeats)."""
  return NgramRepetition(words).top_fraction(n)


def duplicate_ngram_char_fraction(words: list[str], n: int) -> float:
  """Fraction of characters covered by n-grams that occur more than once."""
  return NgramRepetition(words).duplicate_fraction(n)

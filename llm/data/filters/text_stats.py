"""Text statistics shared by the quality filters: words, lines, paragraphs and n-grams.

Words are language-aware. Chinese and Japanese ("zh", "ja") do not separate words with
spaces, so there every CJK character (ideograph or kana) counts as one word and CJK
punctuation separates words; other text between them is split at whitespace. For all other
languages a word is a whitespace-separated token, kept as written (punctuation included), so
that tokens such as "-" or "|" count as words without letters.
"""

import collections
import re
import unicodedata

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


def split_words(text: str, lang: str = "en") -> list[str]:
  """Words of `text`: CJK characters one by one for "zh"/"ja", whitespace tokens otherwise."""
  if is_cjk(lang):
    return _CJK_TOKEN.findall(text)
  return text.split()


def strip_punct(word: str) -> str:
  """The word without leading and trailing punctuation or symbols."""
  start, end = 0, len(word)
  while start < end and unicodedata.category(word[start])[0] in "PS":
    start += 1
  while end > start and unicodedata.category(word[end - 1])[0] in "PS":
    end -= 1
  return word[start:end]


def normalized_words(text: str, lang: str = "en") -> list[str]:
  """Lower-cased words without edge punctuation; tokens that were only punctuation are dropped."""
  words = (strip_punct(w).lower() for w in split_words(text, lang))
  return [w for w in words if w]


def split_lines(text: str) -> list[str]:
  """Non-empty lines, stripped of surrounding whitespace."""
  return [line.strip() for line in text.splitlines() if line.strip()]


def split_paragraphs(text: str) -> list[str]:
  """Non-empty paragraphs (separated by blank lines), stripped."""
  return [p.strip() for p in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")) if p.strip()]


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


def _covered_char_fraction(words: list[str], n: int, starts) -> float:
  """Fraction of word characters inside n-grams starting at `starts`; overlaps count once."""
  covered = [False] * len(words)
  for i in starts:
    covered[i:i + n] = [True] * n
  total = sum(len(w) for w in words)
  return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0


def top_ngram_char_fraction(words: list[str], n: int) -> float:
  """Fraction of characters covered by the most frequent n-gram (0 when none repeats)."""
  grams = ngrams(words, n)
  if not grams:
    return 0.0
  top, count = collections.Counter(grams).most_common(1)[0]
  if count < 2:
    return 0.0
  return _covered_char_fraction(words, n, (i for i, g in enumerate(grams) if g == top))


def duplicate_ngram_char_fraction(words: list[str], n: int) -> float:
  """Fraction of characters covered by n-grams that occur more than once."""
  grams = ngrams(words, n)
  counts = collections.Counter(grams)
  return _covered_char_fraction(words, n, (i for i, g in enumerate(grams) if counts[g] > 1))

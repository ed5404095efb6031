"""Gopher quality and repetition filters (Rae et al. 2021, "Scaling Language Models: Methods,
Analysis & Insights from Training Gopher", Appendix A).

Chinese and Japanese ("zh", "ja"): every CJK character counts as a word (see text_stats), so
the word-count bounds and the n-gram rules work on characters; the mean-word-length rule is
skipped there. The stop-word rule uses English words and runs only for English ("en").
"""

import dataclasses

from llm.data.curation.filters import text_stats

BULLETS = ("-", "*", "\u2022", "\u2023", "\u2043", "\u25cf", "\u25aa", "\u25a0", "\u25e6",
           "\u25ba", "\u2013")  # - * • ‣ ⁃ ● ▪ ■ ◦ ► –
ELLIPSES = ("...", "\u2026")


@dataclasses.dataclass(frozen=True)
class GopherQualityConfig:
  """Gopher quality thresholds; defaults are Rae et al. 2021, Appendix A."""
  min_words: int = 50
  max_words: int = 100_000
  min_mean_word_length: float = 3.0
  max_mean_word_length: float = 10.0
  max_symbol_word_ratio: float = 0.1
  max_bullet_lines: float = 0.9
  max_ellipsis_lines: float = 0.3
  min_alpha_words: float = 0.8
  min_stop_words: int = 2
  stop_words: tuple[str, ...] = ("the", "be", "to", "of", "and", "that", "have", "with")
  stop_word_langs: tuple[str, ...] = ("en",)


@dataclasses.dataclass(frozen=True)
class GopherRepetitionConfig:
  """Gopher repetition thresholds (drop above each); defaults are Rae et al. 2021, Appendix A."""
  max_dup_para_fraction: float = 0.30
  max_dup_para_char_fraction: float = 0.20
  max_dup_line_fraction: float = 0.30
  max_dup_line_char_fraction: float = 0.20
  max_top_ngram_fraction: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
  max_dup_ngram_fraction: tuple[tuple[int, float], ...] = (
      (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def _mean_word_length(words: list[str]) -> float:
  """Mean length of words, not counting their leading and trailing punctuation."""
  lengths = list(map(text_stats.stripped_length, words))
  counted = len(lengths) - lengths.count(0)  # words that were only punctuation do not count
  return sum(lengths) / counted if counted else 0.0


def _symbol_word_ratio(text: str, words: list[str]) -> float:
  """Hash signs and ellipses per word."""
  symbols = text.count("#") + sum(text.count(e) for e in ELLIPSES)
  return symbols / len(words)


def _line_fraction(lines: list[str], test) -> float:
  """Fraction of lines for which `test(line)` holds."""
  return sum(map(test, lines)) / len(lines) if lines else 0.0


def _quality_rules(text: str, lang: str, c: GopherQualityConfig):
  """Yields the name of each quality rule the text breaks, cheapest first."""
  words = text_stats.split_words(text, lang)
  if not words:
    yield "empty"
    return
  if not c.min_words <= len(words) <= c.max_words:
    yield "word_count"
  if not text_stats.is_cjk(lang) and not (
      c.min_mean_word_length <= _mean_word_length(words) <= c.max_mean_word_length):
    yield "mean_word_length"
  if _symbol_word_ratio(text, words) >= c.max_symbol_word_ratio:
    yield "symbol_word_ratio"
  lines = text_stats.split_lines(text)
  if _line_fraction(lines, lambda line: line.startswith(BULLETS)) > c.max_bullet_lines:
    yield "bullet_lines"
  if _line_fraction(lines, lambda line: line.endswith(ELLIPSES)) > c.max_ellipsis_lines:
    yield "ellipsis_lines"
  if sum(map(text_stats.has_letter, words)) / len(words) < c.min_alpha_words:
    yield "alpha_words"
  if lang in c.stop_word_langs:
    present = set(text_stats.normalized_words(text, lang)) & set(c.stop_words)
    if len(present) < c.min_stop_words:
      yield "stop_words"


def gopher_quality_reasons(text: str, lang: str = "en",
                           config: GopherQualityConfig = GopherQualityConfig()) -> list[str]:
  """Every Gopher quality rule the text breaks, as "gopher_quality:<rule>"."""
  return [f"gopher_quality:{rule}" for rule in _quality_rules(text, lang, config)]


def gopher_quality(text: str, lang: str = "en",
                   config: GopherQualityConfig = GopherQualityConfig()) -> str | None:
  """The first Gopher quality rule the text breaks ("gopher_quality:<rule>"), or None to keep."""
  rule = next(_quality_rules(text, lang, config), None)
  return None if rule is None else f"gopher_quality:{rule}"


def _repetition_rules(text: str, lang: str, c: GopherRepetitionConfig):
  """Yields the name of each repetition rule the text breaks, paragraphs before lines.

  Duplicates count the copies after the first. A duplicated paragraph duplicates its lines
  too, so a paragraph rule firing usually comes with the matching line rule.
  """
  words = text_stats.normalized_words(text, lang)
  if not words:
    yield "empty"
    return
  para_frac, para_chars = text_stats.duplicate_fractions(text_stats.split_paragraphs(text))
  line_frac, line_chars = text_stats.duplicate_fractions(text_stats.split_lines(text))
  if para_frac > c.max_dup_para_fraction:
    yield "dup_para_fraction"
  if para_chars > c.max_dup_para_char_fraction:
    yield "dup_para_char_fraction"
  if line_frac > c.max_dup_line_fraction:
    yield "dup_line_fraction"
  if line_chars > c.max_dup_line_char_fraction:
    yield "dup_line_char_fraction"
  if lang in ("zh", "ja"):
    # The n-gram thresholds were set on English words; over CJK characters (our "words"
    # there) ordinary news text exceeds them, so only the line and paragraph rules apply.
    return
  repetition = text_stats.NgramRepetition(words)
  for n, limit in c.max_top_ngram_fraction:
    if repetition.top_fraction(n) > limit:
      yield f"top_{n}gram"
  for n, limit in c.max_dup_ngram_fraction:
    if repetition.duplicate_fraction(n) > limit:
      yield f"dup_{n}gram"


def gopher_repetition_reasons(
    text: str, lang: str = "en",
    config: GopherRepetitionConfig = GopherRepetitionConfig()) -> list[str]:
  """Every Gopher repetition rule the text breaks, as "gopher_repetition:<rule>".

  N-gram fractions are over the characters of lower-cased words stripped of punctuation, with
  overlapping occurrences counted once.
  """
  return [f"gopher_repetition:{rule}" for rule in _repetition_rules(text, lang, config)]


def gopher_repetition(text: str, lang: str = "en",
                      config: GopherRepetitionConfig = GopherRepetitionConfig()) -> str | None:
  """The first Gopher repetition rule the text breaks, or None to keep."""
  rule = next(_repetition_rules(text, lang, config), None)
  return None if rule is None else f"gopher_repetition:{rule}"

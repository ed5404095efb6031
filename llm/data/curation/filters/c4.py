"""C4 cleaning rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", Section 2.2).

C4 is a mapper and a filter: it first drops lines (no terminal punctuation, fewer than three
words, "javascript", cookie and policy notices) and then may drop the whole page (lorem
ipsum, a curly bracket, a listed bad word, fewer than five sentences left).

Chinese and Japanese ("zh", "ja"): 。！？」』 also end a line or a sentence, and since every
CJK character counts as a word (see text_stats), a line needs at least three characters.
"""

import dataclasses
import re

from llm.data.curation.filters import text_stats

# Deliberately tiny; pass a fuller list through C4Config.bad_words, or () to turn it off.
DEFAULT_BAD_WORDS = ("fuck", "fucking", "motherfucker", "shit", "cunt")

POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies")

_SENTENCE_END = re.compile(
    r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d]*")


@dataclasses.dataclass(frozen=True)
class C4Config:
  """C4 thresholds and word lists; defaults follow Raffel et al. 2020, Section 2.2."""
  min_words_per_line: int = 3
  min_sentences: int = 5
  terminal_punct: tuple[str, ...] = text_stats.TERMINAL_PUNCT
  line_drop_words: tuple[str, ...] = ("javascript",)
  policy_phrases: tuple[str, ...] = POLICY_PHRASES
  bad_words: tuple[str, ...] = DEFAULT_BAD_WORDS


def keep_line(line: str, lang: str = "en", config: C4Config = C4Config()) -> bool:
  """True when a stripped line survives C4's line rules."""
  lowered = line.lower()
  if not line.endswith(text_stats.terminal_punct(lang, config.terminal_punct)):
    return False
  if len(text_stats.word_list(line, lang)) < config.min_words_per_line:
    return False
  if any(word in lowered for word in config.line_drop_words):
    return False
  return not any(phrase in lowered for phrase in config.policy_phrases)


def clean_lines(text: str, lang: str = "en", config: C4Config = C4Config()) -> str:
  """The text with every line that breaks a C4 line rule removed (lines joined by newlines)."""
  return "\n".join(line for line in text_stats.split_lines(text) if keep_line(line, lang, config))


def count_sentences(text: str) -> int:
  """Sentences that end in . ! ? (or 。！？) and contain at least one letter or digit."""
  pieces = _SENTENCE_END.split(text)
  # The last piece has no end mark after it, so it is not a finished sentence.
  return sum(any(ch.isalnum() for ch in piece) for piece in pieces[:-1])


def _has_bad_word(text: str, bad_words: tuple[str, ...]) -> bool:
  """True when any listed word or phrase appears as a whole word (case-insensitive)."""
  if not bad_words:
    return False
  pattern = r"\b(?:" + "|".join(map(re.escape, bad_words)) + r")\b"
  return re.search(pattern, text, re.IGNORECASE) is not None


def c4_reasons(text: str, lang: str = "en",
               config: C4Config = C4Config()) -> tuple[str, list[str]]:
  """(cleaned text, every page rule it breaks as "c4:<rule>")."""
  if not text.strip():
    return "", ["c4:empty"]
  broken = []
  if "lorem ipsum" in text.lower():
    broken.append("lorem_ipsum")
  if "{" in text or "}" in text:
    broken.append("curly_bracket")
  if _has_bad_word(text, config.bad_words):
    broken.append("bad_words")
  cleaned = clean_lines(text, lang, config)
  if count_sentences(cleaned) < config.min_sentences:
    broken.append("too_few_sentences")
  return cleaned, [f"c4:{rule}" for rule in broken]


def c4_filter(text: str, lang: str = "en",
              config: C4Config = C4Config()) -> tuple[str, str | None]:
  """(cleaned text, first page rule broken or None to keep).

  Reasons: "c4:empty", "c4:lorem_ipsum", "c4:curly_bracket", "c4:bad_words",
  "c4:too_few_sentences". The cleaned text is returned even when the page is dropped.
  """
  cleaned, reasons = c4_reasons(text, lang, config)
  return cleaned, (reasons[0] if reasons else None)

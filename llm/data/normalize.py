"""Text normalisation: repair broken encodings (ftfy), Unicode NFC, drop control characters."""

import re

import ftfy

# C0/C1 controls except tab, newline; also the replacement character left by bad decoding.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_REPLACEMENT_FRACTION = 0.01


def decode_bytes(raw: bytes) -> str:
  """UTF-8 with invalid bytes replaced (U+FFFD) instead of raising."""
  return raw.decode("utf-8", errors="replace")


def normalize_text(text: str) -> str:
  """Mojibake repaired, NFC, CRLF -> LF, control characters removed, surrogates replaced."""
  text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates -> '?'
  text = ftfy.fix_text(text, normalization="NFC")
  return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def normalize_document(doc: dict) -> tuple[dict, str | None]:
  """The document with normalised text, or a drop reason: empty text, or too many U+FFFD."""
  text = normalize_text(doc["text"])
  if not text.strip():
    return doc, "normalize:empty"
  if text.count("\ufffd") > MAX_REPLACEMENT_FRACTION * len(text):
    return doc, "normalize:broken_encoding"
  return dict(doc, text=text), None

"""Incremental text of one sequence, with stop strings found even when split across tokens.

The whole output is decoded again after each token (cheap at these lengths, and exact for
byte-level and SentencePiece tokenizers alike). Text that could still turn out to be the start
of a stop string, or an unfinished UTF-8 character, is held back until it is certain.
"""

REPLACEMENT = "\ufffd"  # what a tokenizer yields for the bytes of an unfinished character


class Detokenizer:

  def __init__(self, tokenizer, stop: tuple[str, ...] = ()):
    self.tokenizer, self.stop = tokenizer, stop
    self.hold = max((len(s) for s in stop), default=1) - 1
    self.emitted = 0  # characters of the text already returned
    self.text = ""

  def update(self, token_ids: list[int], final: bool) -> tuple[str, bool]:
    """(new text to return, whether a stop string was found). `token_ids`: the output so far
    (without a stop token); `final`: no more tokens will come, so nothing is held back."""
    self.text = self.tokenizer.decode(token_ids)
    search_from = max(0, self.emitted - self.hold)
    hits = [i for i in (self.text.find(s, search_from) for s in self.stop) if i >= 0]
    if hits:
      end, stopped = min(hits), True
    elif final:
      end, stopped = len(self.text), False
    else:
      end, stopped = len(self.text.rstrip(REPLACEMENT)), False
      end = max(self.emitted, end - self.hold)  # counted from before unfinished bytes
    new = self.text[self.emitted:end] if end > self.emitted else ""
    self.emitted = max(self.emitted, end)
    return new, stopped

"""HF `tokenizer.json` files (imported models) behind our Tokenizer interface, through the
`tokenizers` library.

Special tokens written in text are encoded as plain text (`encode_special_tokens`), so that
untrusted text cannot produce control ids, as with our SentencePiece models.
"""

import os
from typing import Sequence

from llm.tokenizer.base import BOS, EOS, PAD

# Names imported models use for the roles our code needs, most common first.
_ROLE_NAMES = {"bos": (BOS, "<|begin_of_text|>", "<|endoftext|>", "<|im_start|>"),
               "eos": (EOS, "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>"),
               "pad": (PAD, "<|finetune_right_pad_id|>", "<|endoftext|>")}


class HFTokenizer:
  """A tokenizer.json; bos/eos/pad ids are looked up by their usual names unless given."""

  def __init__(self, path: str, bos: str | None = None, eos: str | None = None,
               pad: str | None = None, tokenizer=None):
    """path: a tokenizer.json; or `tokenizer`, a built `tokenizers.Tokenizer`, with `path`
    naming where it came from."""
    from tokenizers import Tokenizer as RustTokenizer
    if tokenizer is None and not os.path.exists(path):
      raise FileNotFoundError(f"tokenizer file {path!r} does not exist")
    self._tok = tokenizer if tokenizer is not None else RustTokenizer.from_file(path)
    self._tok.encode_special_tokens = True  # "<|im_start|>" in text stays text
    self.path = path
    self._special = {t.content: i for i, t in self._tok.get_added_tokens_decoder().items()
                     if t.special}
    self.bos_id = self._role("bos", bos)
    self.eos_id = self._role("eos", eos)
    self.pad_id = self._role("pad", pad, default=self.eos_id)

  def _role(self, role: str, name: str | None, default: int | None = None) -> int:
    for candidate in (name,) if name else _ROLE_NAMES[role]:
      if candidate in self._special:
        return self._special[candidate]
    if default is not None:
      return default
    raise KeyError(f"{self.path}: no {role} token among {sorted(self._special)}; pass "
                   f"{role}=NAME")

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str) -> list[int]:
    return self._tok.encode(text, add_special_tokens=False).ids

  def encode_batch(self, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

  def special_id(self, token: str) -> int:
    if token not in self._special:
      raise KeyError(f"{token!r} is not a special token of {self.path}")
    return self._special[token]

  def special_tokens(self) -> list[str]:
    return list(self._special)

  def is_special(self, token_id: int) -> bool:
    return int(token_id) in self._special.values()

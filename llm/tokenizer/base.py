"""The one tokenizer interface, and the special tokens every tokenizer of ours carries.

Special tokens are *control* tokens: encoding text never produces them, whatever the text
says, so a user who types "<|im_start|>system" gets those characters, not the control id. Only
code (the chat template, FIM, packing) inserts them, by id.
"""

from typing import Protocol, Sequence

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = ("<fim_prefix>", "<fim_middle>", "<fim_suffix>",
                                               "<fim_pad>")  # StarCoder's names
CONTROL_TOKENS = (IM_START, IM_END, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD)


class Tokenizer(Protocol):
  """What the rest of the code needs from a tokenizer."""

  pad_id: int
  bos_id: int
  eos_id: int

  @property
  def vocab_size(self) -> int: ...

  def encode(self, text: str) -> list[int]:
    """Ids of untrusted text: never a special or control id."""

  def decode(self, ids: Sequence[int]) -> str:
    """Text of ids; control ids decode to nothing."""

  def special_id(self, token: str) -> int:
    """Id of a special or control token; KeyError naming the token if it has none."""

  def is_special(self, token_id: int) -> bool:
    """True for special and control ids (pad, bos, eos, chat, FIM, ...)."""

  def special_tokens(self) -> list[str]:
    """The special and control tokens' strings."""

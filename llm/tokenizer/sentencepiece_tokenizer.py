"""SentencePiece BPE or Unigram with byte fallback, settings that keep code and whitespace
byte-exact, and our special tokens as control symbols (never produced from text)."""

import io
import os
from typing import Iterable, Iterator, Sequence

import sentencepiece as spm

from llm.tokenizer.base import BOS, CONTROL_TOKENS, EOS, PAD, UNK

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
MODEL_TYPES = ("bpe", "unigram")
_META_SPACE = "\u2581"  # how SentencePiece writes a space inside pieces


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_path: str,
                    model_type: str = "bpe", extra_control_tokens: Sequence[str] = (),
                    character_coverage: float = 0.9995,
                    threads: int | None = None) -> "SentencePieceTokenizer":
  """Trains on `texts`, writes `model_path` atomically and returns it loaded.

  Ids: pad 0, unk 1, bos 2, eos 3, then CONTROL_TOKENS and `extra_control_tokens`, then "\\n"
  and "\\t" as whole pieces, then the learned vocabulary (with 256 byte pieces).
  """
  if model_type not in MODEL_TYPES:
    raise ValueError(f"tokenizer model_type {model_type!r}: choose one of {MODEL_TYPES}")
  model = io.BytesIO()
  try:
    _train(texts, model, vocab_size, model_type, extra_control_tokens, character_coverage,
           threads)
  except RuntimeError as error:
    if "required_chars" not in str(error):
      raise
    raise ValueError(f"vocab_size={vocab_size} is smaller than the characters that "
                     f"character_coverage={character_coverage} keeps ({error}); raise the "
                     "vocabulary or lower the coverage (CJK text has thousands of "
                     "characters)") from error
  os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
  tmp = f"{model_path}.tmp"
  with open(tmp, "wb") as f:
    f.write(model.getvalue())
  os.replace(tmp, model_path)
  return SentencePieceTokenizer(model_path)


def training_pieces(texts: Iterable[str], max_chars: int = 4096) -> Iterator[str]:
  """Texts cut at line ends into pieces of at most `max_chars` (longer lines are cut too):
  SentencePiece silently skips any training "sentence" longer than max_sentence_length."""
  for text in texts:
    piece = ""
    for line in text.splitlines(keepends=True):
      while len(line) > max_chars:
        if piece:
          yield piece
          piece = ""
        yield line[:max_chars]
        line = line[max_chars:]
      if len(piece) + len(line) > max_chars:
        yield piece
        piece = ""
      piece += line
    if piece:
      yield piece


def _train(texts, model, vocab_size, model_type, extra_control_tokens, character_coverage,
           threads) -> None:
  spm.SentencePieceTrainer.train(
      sentence_iterator=training_pieces(texts), model_writer=model, vocab_size=vocab_size,
      model_type=model_type, character_coverage=character_coverage, byte_fallback=True,
      split_digits=True,
      normalization_rule_name="identity", remove_extra_whitespaces=False,
      allow_whitespace_only_pieces=True, add_dummy_prefix=False,
      control_symbols=list(CONTROL_TOKENS) + list(extra_control_tokens),
      user_defined_symbols=["\n", "\t"], pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID,
      eos_id=EOS_ID, pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
      max_sentence_length=1 << 16, num_threads=threads or os.cpu_count() or 1,
      train_extremely_large_corpus=False, minloglevel=2)


class SentencePieceTokenizer:
  """Our SentencePiece models: pad 0, unk 1, bos 2, eos 3, control tokens after."""

  pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

  def __init__(self, model_path: str):
    if not os.path.exists(model_path):
      raise FileNotFoundError(f"tokenizer model {model_path!r} does not exist: train one with "
                              "llm.tokenizer.train_tokenizer, or fix data.tokenizer_path")
    self._sp = spm.SentencePieceProcessor(model_file=model_path)
    self._sp_inner = self._sp  # for text after a literal U+2581: no dummy prefix there
    self.path = model_path

  @classmethod
  def from_model_proto(cls, model_proto: bytes, name: str, *, unk_id: int, bos_id: int,
                       eos_id: int, pad_id: int) -> "SentencePieceTokenizer":
    """A serialized SentencePiece ModelProto with its own special ids (e.g. a GGUF file's
    Llama vocabulary: unk 0, bos 1, eos 2)."""
    from sentencepiece import sentencepiece_model_pb2 as sp_model
    tokenizer = cls.__new__(cls)
    tokenizer._sp = tokenizer._sp_inner = spm.SentencePieceProcessor(model_proto=model_proto)
    proto = sp_model.ModelProto.FromString(model_proto)
    if proto.normalizer_spec.add_dummy_prefix:
      proto.normalizer_spec.add_dummy_prefix = False
      tokenizer._sp_inner = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    tokenizer.path = name
    tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id = (
        unk_id, bos_id, eos_id, pad_id)
    return tokenizer

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    """Ids of `text`; control symbols are never matched in text. SentencePiece writes spaces
    as U+2581 and would decode a literal U+2581 as a space, so that character goes in as its
    UTF-8 bytes (byte-fallback pieces), which decode back to it."""
    if _META_SPACE not in text:
      return self._sp.encode(text)
    parts = text.split(_META_SPACE)
    ids = self._sp.encode(parts[0])
    for part in parts[1:]:
      ids += self._meta_space_bytes + self._sp_inner.encode(part)
    return ids

  def encode_batch(self, texts: list[str], threads: int = 0) -> list[list[int]]:
    """`encode` of many texts, on `threads` threads (0: all cores)."""
    out = self._sp.encode(texts, num_threads=threads or os.cpu_count() or 1)
    return [self.encode(t) if _META_SPACE in t else ids for t, ids in zip(texts, out)]

  @property
  def _meta_space_bytes(self) -> list[int]:
    return [self._sp.piece_to_id(f"<0x{b:02X}>") for b in _META_SPACE.encode()]

  def decode(self, ids: Sequence[int]) -> str:
    return self._sp.decode([int(i) for i in ids])

  def special_id(self, token: str) -> int:
    token_id = self._sp.piece_to_id(token)
    if token_id == self.unk_id and token != self._sp.id_to_piece(self.unk_id):
      raise KeyError(f"{token!r} is not a special token of {self.path}; train the tokenizer "
                     "with it in extra_control_tokens")
    return token_id

  def is_special(self, token_id: int) -> bool:
    return self._sp.is_control(int(token_id)) or int(token_id) == self.unk_id

  def special_tokens(self) -> list[str]:
    return [self._sp.id_to_piece(i) for i in range(self.vocab_size) if self.is_special(i)]

  def is_byte(self, token_id: int) -> bool:
    """True for byte-fallback pieces (<0x00>..<0xFF>)."""
    return self._sp.is_byte(int(token_id))

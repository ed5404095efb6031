"""SentencePiece BPE training with settings that keep code and whitespace byte-exact."""

import io
import os

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_tokenizer(texts: list[str], vocab_size: int, model_path: str,
                    model_type: str = "bpe") -> "Tokenizer":
  """Trains a tokenizer on `texts`, writes `model_path` atomically and returns it loaded."""
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
      model_type=model_type, character_coverage=0.9995, byte_fallback=True, split_digits=True,
      normalization_rule_name="identity", remove_extra_whitespaces=False,
      allow_whitespace_only_pieces=True, add_dummy_prefix=False,
      user_defined_symbols=["\n", "\t"], pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID,
      eos_id=EOS_ID, max_sentence_length=1 << 16, num_threads=os.cpu_count() or 1,
      minloglevel=2)
  os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
  tmp = f"{model_path}.tmp"
  with open(tmp, "wb") as f:
    f.write(model.getvalue())
  os.replace(tmp, model_path)
  return Tokenizer(model_path)


class Tokenizer:
  """Encode/decode with fixed special ids: pad 0, unk 1, bos 2, eos 3."""

  pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

  def __init__(self, model_path: str):
    if not os.path.exists(model_path):
      raise FileNotFoundError(f"tokenizer model {model_path!r} does not exist: train one with "
                              "llm.tokenizer.train_tokenizer, or fix data.tokenizer_path")
    self._sp = spm.SentencePieceProcessor(model_file=model_path)
    self.path = model_path

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def decode(self, ids) -> str:
    return self._sp.decode([int(i) for i in ids])

"""Tokenizers behind one interface: our SentencePiece models and HF tokenizer.json files."""

from llm.tokenizer.base import Tokenizer
from llm.tokenizer.sentencepiece_tokenizer import SentencePieceTokenizer, train_tokenizer


def load_tokenizer(path: str) -> Tokenizer:
  """A SentencePiece .model, or an HF tokenizer.json (through the `tokenizers` library)."""
  if path.endswith(".json"):
    from llm.tokenizer.hf_tokenizer import HFTokenizer
    return HFTokenizer(path)
  return SentencePieceTokenizer(path)

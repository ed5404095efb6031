"""Tokenizers: SentencePiece training and a thin encode/decode wrapper."""

from llm.tokenizer.sentencepiece_tokenizer import Tokenizer, train_tokenizer

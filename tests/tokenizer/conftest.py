import pytest

from llm.data.sources import load_documents
from llm.tokenizer import train_tokenizer


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory):
  """A 2,000-piece BPE model on English prose and Python code."""
  texts = [d["text"] for source in ("shakespeare", "python_stdlib")
           for d in load_documents(source, 200_000)]
  return train_tokenizer(texts, 2000, str(tmp_path_factory.mktemp("tok") / "small.model"))

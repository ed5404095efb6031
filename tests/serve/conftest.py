"""A micro model with random weights and a character tokenizer, for fast engine tests."""

import pytest
from flax import nnx

from llm.model.factory import build_model
from llm.serve.engine import Engine, EngineConfig
from tests.conftest import micro_config

ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?0123456789"


class CharTokenizer:
  """Token i is character ALPHABET[i - 2]; 0 is padding, 1 the end of text."""
  eos_id = 1

  def encode(self, text: str) -> list[int]:
    return [ALPHABET.index(c) + 2 for c in text]

  def decode(self, ids) -> str:
    return "".join(ALPHABET[i - 2] for i in ids if 2 <= i < len(ALPHABET) + 2)

  def special_tokens(self) -> list[str]:
    return []


@pytest.fixture(scope="session")
def micro_model():
  """(graphdef, params, model config) of a 2-layer model with 6 query and 2 kv heads."""
  config = micro_config(num_heads=6, num_kv_heads=2, max_seq_len=64)
  graphdef, params = nnx.split(build_model(config.model, seed=3), nnx.Param)
  return graphdef, params, config.model


def make_engine(micro_model, **settings) -> Engine:
  """One pool size and token budget for every test, so they share compiled shapes."""
  graphdef, params, model_config = micro_model
  return Engine(graphdef, params, model_config, CharTokenizer(),
                EngineConfig(**{"block_size": 4, "num_blocks": 20, "max_num_batched_tokens": 16,
                                 **settings}))

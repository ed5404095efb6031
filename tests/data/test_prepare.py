"""Preparing pretraining data: cached per data config; FIM and chat-templated conversations
mixed in by config."""

import pytest

from llm.config import ConfigError, validate
from llm.data.prepare import prepare_lm_data
from tests.conftest import micro_config


def test_fim_and_instruction_share_reach_the_packed_rows(tmp_path):
  config = micro_config()
  data = config.data
  data.max_chars, data.tokenizer_vocab_size, data.heldout_fraction = 60_000, 512, 0.2
  data.fim_rate, data.fim_spm_rate, data.instruction_share = 0.5, 0.5, 0.05
  _, train, _ = prepare_lm_data(data, str(tmp_path))
  layouts = train.manifest["layouts"]
  documents = layouts["none"] + layouts["psm"] + layouts["spm"]
  assert layouts["chat"] > 0 and layouts["psm"] > 0 and layouts["spm"] > 0
  assert 0.3 < (layouts["psm"] + layouts["spm"]) / documents < 0.7


def test_prepared_data_refuses_a_changed_data_config(tmp_path):
  config = micro_config()
  config.data.max_chars, config.data.tokenizer_vocab_size = 60_000, 512
  config.data.heldout_fraction = 0.2
  tokenizer, train, heldout = prepare_lm_data(config.data, str(tmp_path))
  train = train.to_arrays()
  assert train["inputs"].shape[1] == 16 and int(train["inputs"].max()) < 512
  assert (train["inputs"] == tokenizer.bos_id).any() and heldout["inputs"].shape[1] == 16
  again = prepare_lm_data(config.data, str(tmp_path))[1].to_arrays()
  assert (again["inputs"] == train["inputs"]).all()
  config.data.seq_len = 8
  with pytest.raises(ValueError, match="data.seq_len"):
    prepare_lm_data(config.data, str(tmp_path))


@pytest.mark.parametrize("field,value", [("fim_rate", 1.5), ("instruction_share", 1.0),
                                         ("tokenizer_type", "wordpiece")])
def test_bad_data_settings_name_the_field(field, value):
  config = micro_config()
  config.data[field] = value
  with pytest.raises(ConfigError, match=f"data.{field}"):
    validate(config)


def test_replay_share_mixes_general_data_into_training():
  from llm.data.prepare import training_documents
  from llm.data.curation.stats import estimate_tokens
  config = micro_config()
  data = config.data
  data.source, data.max_chars = "chitchat", 300_000
  data.replay_source, data.replay_share = "shakespeare", 0.05
  validate(config)
  docs, heldout = training_documents(data)
  replay = [x for x in docs if x["meta"].get("replay")]
  assert replay and all(x["source"] == "shakespeare" for x in replay)
  assert {x["source"] for x in docs if not x["meta"].get("replay")} == {"chitchat"}
  share = sum(estimate_tokens(x["text"]) for x in replay) / sum(
      estimate_tokens(x["text"]) for x in docs)
  assert 0.04 <= share <= 0.07, share
  assert heldout  # held-out text stays the new source's own

"""LoRA: only the adapters train, the base stays bitwise, and merging keeps the function."""

import jax
import numpy as np
import pytest
from flax import nnx

from llm.config import ConfigError
from llm.model.config_checks import check_model_config
from llm.model import build_model
from llm.model.lora import merge_lora
from llm.model.upcycle import grow
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.partition import count, merge
from tests.conftest import micro_config, random_rows

TOKENS = jax.random.randint(jax.random.key(3), (2, 12), 0, 64)


def _lora_config(rank=4, dropout=0.0):
  config = micro_config()
  config.model.lora.rank, config.model.lora.alpha, config.model.lora.dropout = rank, 8.0, dropout
  return config


def _logits(model_config, params):
  graphdef, _ = nnx.split(build_model(model_config, 0), nnx.Param)
  return nnx.merge(graphdef, params)(TOKENS)


def test_adapters_train_alone_and_merge_into_the_same_function(tmp_path):
  base_config = micro_config()
  base = nnx.to_pure_dict(nnx.state(build_model(base_config.model, 1), nnx.Param))
  config = _lora_config()
  config.train.steps, config.train.batch_size, config.train.trainable = 4, 8, "lora"
  config.optim.lr = 3e-2
  init = grow(base, config.model)
  np.testing.assert_allclose(_logits(config.model, init), _logits(base_config.model, base),
                             atol=1e-6)  # B starts at zero
  result = train(config, LMTask(config, random_rows(), init_params=init), str(tmp_path))
  trained, frozen = jax.device_get((result["state"]["params"], result["frozen"]))
  fraction = count(trained) / (count(trained) + count(frozen))
  assert 0 < fraction < 0.5, fraction  # reported: the adapters are a small share
  jax.tree.map(np.testing.assert_array_equal, frozen, base)  # the base never moved
  params = merge(trained, frozen)
  assert float(np.abs(params["layers"]["attn"]["q_proj_lora"]["b"]).max()) > 0
  merged = merge_lora(params, config.model.lora)
  assert "q_proj_lora" not in merged["layers"]["attn"]
  np.testing.assert_allclose(_logits(base_config.model, merged), _logits(config.model, params),
                             atol=1e-5)


def test_dropout_applies_only_with_a_key():
  model = build_model(_lora_config(dropout=0.5).model, 0)
  graphdef, params = nnx.split(model, nnx.Param)
  params = jax.tree.map(lambda x: x + 0.01, nnx.to_pure_dict(params))  # non-zero B
  model = nnx.merge(graphdef, params)
  plain = model.forward_with_aux(TOKENS)[0]
  np.testing.assert_array_equal(model.forward_with_aux(TOKENS, rng=None)[0], plain)
  assert float(np.abs(model.forward_with_aux(TOKENS, rng=jax.random.key(1))[0] - plain).max()) > 0


def test_unknown_target_is_a_config_error():
  config = _lora_config()
  config.model.lora.targets = "q_proj,wq"
  with pytest.raises(ConfigError, match="wq"):
    check_model_config(config)


def test_fresh_adapters_on_trained_weights_change_no_output():
  from flax import nnx
  from llm.model.factory import build_model, with_fresh_adapters
  plain = _lora_config(rank=0).model
  trained = nnx.to_pure_dict(nnx.state(build_model(plain, 3), nnx.Param))
  adapted = _lora_config(rank=4).model
  params = with_fresh_adapters(adapted, trained, seed=1)
  assert "q_proj_lora" in params["layers"]["attn"]
  ids = jax.numpy.asarray([[3, 9, 11, 5, 7]])
  with_adapters = nnx.merge(nnx.split(build_model(adapted, 0), nnx.Param)[0], params)(ids)
  without = nnx.merge(nnx.split(build_model(plain, 0), nnx.Param)[0], trained)(ids)
  np.testing.assert_array_equal(np.asarray(with_adapters), np.asarray(without))

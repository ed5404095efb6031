"""Quantizing a whole (micro) model block by block: GPTQ below RTN on every weight, saved and
loaded with identical outputs, served by the engine with its own greedy tokens."""

import numpy as np
import pytest
from flax import nnx

from llm.model.factory import build_model
from llm.quant.grid import Grid
from llm.quant.model_quant import QuantSettings, quantize_model
from tests.conftest import micro_config


@pytest.fixture(scope="module")
def quantized_micro():
  """(model config, graphdef, float model, GPTQ 3-bit g8 params, per-weight errors): the
  serving tests' micro model (6 query and 2 kv heads, context 64)."""
  config = micro_config(num_heads=6, num_kv_heads=2, max_seq_len=64)
  model = build_model(config.model, seed=3)
  tokens = np.random.default_rng(0).integers(0, 64, (8, 16))
  params, errors = quantize_model(model, tokens, QuantSettings("gptq", Grid(3, 8, False)))
  return config, nnx.split(model, nnx.Param)[0], model, params, errors


def test_gptq_beats_rtn_on_every_weight_and_the_model_reads_its_packed_weights(
    quantized_micro):
  config, graphdef, model, quantized, errors = quantized_micro
  assert len(errors) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
  for e in errors:
    assert e["gptq"] < e["rtn"], e
  tokens = np.random.default_rng(1).integers(0, 64, (2, 16))
  float_logits = np.asarray(model(tokens))
  merged = nnx.merge(graphdef, quantized)
  assert merged.layers.mlp.up[...].shape == model.layers.mlp.up[...].shape
  change = np.abs(np.asarray(merged(tokens)) - float_logits).mean() / np.abs(float_logits).mean()
  assert 0 < change < 0.5, change


def test_a_saved_quantized_model_loads_with_identical_outputs(quantized_micro, tmp_path):
  from llm.quant.checkpoint import load_quantized, save_quantized
  config, graphdef, _, quantized, _ = quantized_micro
  path = save_quantized(str(tmp_path / "q"), quantized, config.model.to_dict(), "gptq:3:g8")
  loaded, meta = load_quantized(path)
  assert meta["settings"] == "gptq:3:g8"
  tokens = np.random.default_rng(1).integers(0, 64, (2, 16))
  np.testing.assert_array_equal(np.asarray(nnx.merge(graphdef, loaded)(tokens)),
                                np.asarray(nnx.merge(graphdef, quantized)(tokens)))
  with pytest.raises(FileExistsError, match="exists"):
    save_quantized(path, quantized, {}, "")


def test_the_engine_serves_a_quantized_model_with_its_own_greedy_tokens(quantized_micro):
  from llm.model.sampling import complete
  from llm.serve.sampling_params import SamplingParams
  from tests.serve.conftest import make_engine
  config, graphdef, _, quantized, _ = quantized_micro
  engine = make_engine((graphdef, quantized, config.model))
  prompts = [[5, 9, 2, 33], [7, 1, 12, 40, 41, 3]]
  for i, p in enumerate(prompts):
    engine.add_request(str(i), p, SamplingParams(max_tokens=3, temperature=0.0,
                                                 ignore_eos=True))
  out = {}
  while engine.has_unfinished():
    for o in engine.step():
      out.setdefault(o.request_id, []).extend(o.token_ids)
  for i, p in enumerate(prompts):
    assert out[str(i)] == complete(graphdef, quantized, p, 3)


def test_moe_experts_are_quantized_each_on_its_own_routed_tokens():
  from llm.quant.quantized import QuantizedWeight
  config = micro_config()
  config.model.moe.num_experts, config.model.moe.shared_experts = 4, 1
  model = build_model(config.model, seed=5)
  tokens = np.random.default_rng(0).integers(0, 64, (8, 16))
  params, errors = quantize_model(model, tokens, QuantSettings("gptq", Grid(4, 8, False)))
  expert_errors = [e for e in errors if e["weight"] in ("mlp/gate", "mlp/up", "mlp/down")]
  assert len(errors) == 2 * 10 and len(expert_errors) == 6  # + shared gate/up/down
  for e in errors:
    assert e["gptq"] < e["rtn"], e
  merged = nnx.merge(nnx.split(model, nnx.Param)[0], params)
  assert isinstance(params["layers"]["mlp"]["down"], QuantizedWeight)
  assert merged.layers.mlp.down[...].shape == model.layers.mlp.down[...].shape  # [L, E, f, d]
  float_logits = np.asarray(model(tokens[:2]))
  change = np.abs(np.asarray(merged(tokens[:2])) - float_logits).mean()
  assert 0 < change / np.abs(float_logits).mean() < 0.2

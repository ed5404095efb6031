"""Quantizing a whole (micro) model block by block: outputs close to float, GPTQ below RTN."""

import numpy as np
from flax import nnx

from llm.model.factory import build_model
from llm.quant.grid import Grid
from llm.quant.model_quant import QuantSettings, quantize_model
from tests.conftest import micro_config


def test_gptq_beats_rtn_on_every_weight_and_the_model_reads_its_packed_weights():
  config = micro_config()
  model = build_model(config.model, seed=4)
  graphdef, params = nnx.split(model, nnx.Param)
  tokens = np.random.default_rng(0).integers(0, 64, (8, 16))
  settings = QuantSettings("gptq", Grid(3, 8, False))
  quantized, errors = quantize_model(model, tokens, settings)
  assert len(errors) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
  for e in errors:
    assert e["gptq"] < e["rtn"], e
  float_logits = np.asarray(model(tokens))
  merged = nnx.merge(graphdef, quantized)
  quant_logits = np.asarray(merged(tokens))
  assert merged.layers.mlp.up[...].shape == model.layers.mlp.up[...].shape
  change = np.abs(quant_logits - float_logits).mean() / np.abs(float_logits).mean()
  assert 0 < change < 0.5, change


def test_a_saved_quantized_model_loads_with_identical_outputs(tmp_path):
  import pytest
  from llm.quant.checkpoint import load_quantized, save_quantized
  config = micro_config(scan_layers=False)
  model = build_model(config.model, seed=5)
  graphdef = nnx.split(model, nnx.Param)[0]
  tokens = np.random.default_rng(1).integers(0, 64, (4, 16))
  settings = QuantSettings("rtn", Grid(4, 8, True))
  quantized, _ = quantize_model(model, tokens, settings)
  path = save_quantized(str(tmp_path / "q"), quantized, config.model.to_dict(),
                        settings.describe())
  loaded, meta = load_quantized(path)
  assert meta["settings"] == "rtn:4:g8:sym"
  np.testing.assert_array_equal(np.asarray(nnx.merge(graphdef, loaded)(tokens)),
                                np.asarray(nnx.merge(graphdef, quantized)(tokens)))
  with pytest.raises(FileExistsError, match="exists"):
    save_quantized(path, quantized, {}, "")


def test_the_engine_serves_a_quantized_model_with_its_own_greedy_tokens():
  from llm.model.sampling import complete
  from llm.serve.sampling_params import SamplingParams
  from tests.serve.conftest import make_engine
  config = micro_config(num_heads=6, num_kv_heads=2, max_seq_len=64)
  model = build_model(config.model, seed=3)
  graphdef = nnx.split(model, nnx.Param)[0]
  tokens = np.random.default_rng(2).integers(0, 64, (4, 16))
  quantized, _ = quantize_model(model, tokens, QuantSettings("gptq", Grid(4, 8, False)))
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

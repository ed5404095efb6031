"""Logit parity with transformers (PyTorch, float32): HF checkpoints in, ours out."""

import numpy as np
import pytest
from flax import nnx

from llm.interop.hf_checkpoint import load_hf_checkpoint, save_hf_checkpoint
from llm.model import build_model
from tests.interop.helpers import hf_logits, our_logits

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=96, hidden_size=64, intermediate_size=80, num_hidden_layers=2,
             num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
             rms_norm_eps=1e-5, initializer_range=0.15, tie_word_embeddings=False)


def _tokens(vocab, seed=0):
  return np.random.default_rng(seed).integers(0, vocab, size=(2, 24))


@pytest.mark.parametrize("kind", ["llama", "mixtral", "llama3_rope", "qwen2"])
def test_imported_checkpoints_match_transformers(tmp_path, kind):
  torch.manual_seed(0)
  if kind == "mixtral":
    config = transformers.MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2)
    model = transformers.MixtralForCausalLM(config)
  elif kind == "qwen2":
    config = transformers.Qwen2Config(**SMALL)
    model = transformers.Qwen2ForCausalLM(config)
    for layer in model.model.layers:  # zero-initialised by default: make the biases count
      for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
        torch.nn.init.normal_(proj.bias, std=0.5)
  else:
    rope = ({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 16} if kind == "llama3_rope" else None)
    config = transformers.LlamaConfig(**SMALL, rope_parameters=rope)
    model = transformers.LlamaForCausalLM(config)
  model.eval().save_pretrained(tmp_path)
  ours, params, _ = load_hf_checkpoint(str(tmp_path))
  tokens = _tokens(SMALL["vocab_size"])
  expected = hf_logits(model, tokens)
  got = our_logits(ours.model, params, tokens)
  assert np.abs(expected).max() > 1.0  # logits large enough for the comparison to mean much
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("moe", [False, True])
def test_exported_checkpoints_load_in_transformers_with_the_same_logits(tmp_path, moe):
  from tests.conftest import micro_config
  model_config = micro_config(vocab_size=96, d_model=64, num_heads=8, num_kv_heads=2,
                              head_dim=8, mlp_dim=80, tie_embeddings=moe, init_std=0.15).model
  if moe:
    model_config.moe.num_experts, model_config.moe.top_k = 4, 2
  params = nnx.to_pure_dict(nnx.state(build_model(model_config, seed=3), nnx.Param))
  save_hf_checkpoint(str(tmp_path / "export"), model_config, params)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(tmp_path / "export"), dtype=torch.float32).eval()
  assert type(model).__name__ == ("MixtralForCausalLM" if moe else "LlamaForCausalLM")
  tokens = _tokens(96, seed=1)
  np.testing.assert_allclose(hf_logits(model, tokens), our_logits(model_config, params, tokens),
                             atol=1e-4, rtol=0)
  reloaded, again, _ = load_hf_checkpoint(str(tmp_path / "export"))  # and back in, bitwise
  np.testing.assert_array_equal(our_logits(reloaded.model, again, tokens),
                                our_logits(model_config, params, tokens))

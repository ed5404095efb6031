"""The paged forward pass against the dense KV-cache decode of the same model."""

import numpy as np

from llm.model.factory import build_model
from tests.conftest import micro_config
from tests.model.paged_decode import dense_logits_per_step, paged_logits_per_step


def test_paged_decode_matches_dense_cache():
  # unrolled layers here; the tiny-config test below runs the scanned ones
  config = micro_config(scan_layers=False, num_heads=6, num_kv_heads=2)
  model = build_model(config.model)
  prompts = [[3, 7, 1, 9, 4, 4, 2], [5, 6], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]
  paged = paged_logits_per_step(model, config.model, prompts, steps=4, chunk=5)
  for row, prompt in enumerate(prompts):
    dense = dense_logits_per_step(model, prompt, 4)
    assert len(paged[row]) == len(dense) == 5
    for step, (p, d) in enumerate(zip(paged[row], dense)):
      np.testing.assert_allclose(p, d, atol=1e-5, err_msg=f"seq {row} step {step}")


def test_the_tiny_config_decodes_through_the_paged_cache_with_the_dense_logits():
  from llm.config import load_experiment
  config = load_experiment("tiny")
  model = build_model(config.model, seed=2)
  prompt = [17, 300, 5, 1999, 42, 7, 7, 128, 64]
  paged = paged_logits_per_step(model, config.model, [prompt], steps=3, chunk=4,
                                block_size=16)[0]
  for step, (p, d) in enumerate(zip(paged, dense_logits_per_step(model, prompt, 3))):
    np.testing.assert_allclose(p, d, atol=1e-5, err_msg=f"step {step}")

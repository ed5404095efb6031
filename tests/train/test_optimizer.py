"""Weight decay skips norms and biases."""

import jax.numpy as jnp
import numpy as np

from llm.train.optimizer import build_optimizer, decay_mask
from tests.conftest import micro_config


def test_decay_mask_skips_norm_scales_and_biases():
  params = {"embed": jnp.ones((4, 2)), "final_norm": {"scale": jnp.ones(2)},
            "layers": {"attn_norm": {"scale": jnp.ones((3, 2))}, "mlp": {"up": jnp.ones((3, 2, 2)),
                                                                       "bias": jnp.ones(2)}}}
  assert decay_mask(params) == {
      "embed": True, "final_norm": {"scale": False},
      "layers": {"attn_norm": {"scale": False}, "mlp": {"up": True, "bias": False}}}


def test_zero_gradient_step_decays_only_masked_in_params():
  config = micro_config()
  config.optim.warmup_steps = 0
  tx, schedule = build_optimizer(config.optim, total_steps=10)
  params = {"w": jnp.full((2, 2), 2.0), "norm": {"scale": jnp.full((2,), 2.0)}}
  state = tx.init(params)
  zeros = {"w": jnp.zeros((2, 2)), "norm": {"scale": jnp.zeros(2)}}
  updates, _ = tx.update(zeros, state, params)
  lr = float(schedule(0))
  np.testing.assert_allclose(updates["w"], -lr * config.optim.weight_decay * 2.0, rtol=1e-6)
  np.testing.assert_array_equal(updates["norm"]["scale"], 0.0)


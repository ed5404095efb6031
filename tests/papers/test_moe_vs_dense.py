"""The MoE study's equal-total sizing, overrides and loss curves against hand-computed numbers
(no training)."""

import jax.numpy as jnp
import pytest

from experiments.papers import moe_report
from experiments.papers.moe_vs_dense import (apply_overrides, curve, equal_total_mlp_dim,
                                             patched_routing, WEIGHT_SCALE, SWITCH_GATE)
from llm.config import load_experiment
from llm.model import moe_routing
from llm.train.flops import parameter_counts


def test_equal_total_dense_is_as_wide_as_all_experts():
  moe = load_experiment("moe_tiny").model
  # per layer: 8 experts x 3 x 128 x 176 + router 128 x 8 = 541,696 = 3 x 128 x 1410.67
  assert equal_total_mlp_dim(moe) == 1408
  dense = apply_overrides(load_experiment("tiny"), {"model.mlp_dim": 1408}).model
  # 2048 x 128 embedding + 2 x (attention 49,152 + MLP 3 x 128 x 1408 + norms 256) + 128
  assert parameter_counts(dense)["total"] == 1_442_432
  assert parameter_counts(moe)["total"] == 1_444_480  # the router's 2 x 1024 more
  assert parameter_counts(moe)["active"] == 633_472   # tiny's 631,424 + the routers


def test_apply_overrides_sets_nested_fields():
  config = apply_overrides(load_experiment("moe_tiny"),
                           {"model.moe.top_k": 1, "optim.lr": 1e-3, "train.batch_size": 64})
  assert (config.model.moe.top_k, config.optim.lr, config.train.batch_size) == (1, 1e-3, 64)


def test_curve_averages_windows_and_keeps_eval_points():
  history = [{"step": 1, "loss": 9.0, "lm_loss": 5.0}, {"step": 2, "loss": 9.0, "lm_loss": 3.0},
             {"step": 3, "loss": 2.0, "eval_loss": 2.5}, {"step": 4, "loss": 1.0}]
  c = curve(history, tokens_per_step=100, window=2)
  assert c["train_tokens"] == [200, 400]
  assert c["train_loss"] == [4.0, 1.5]  # lm_loss (no auxiliary losses) where logged
  assert (c["eval_tokens"], c["eval_loss"]) == ([300], [2.5])


@pytest.mark.parametrize("gap, word", [(-0.05, "reproduced"), (0.005, "partly reproduced"),
                                       (0.2, "not reproduced")])
def test_verdict_word_against_noise(gap, word):
  assert moe_report._verdict_word(gap, noise=0.01) == word


def test_patched_routing_only_inside_the_context():
  x, router = jnp.eye(2), jnp.log(jnp.array([[1.0, 2.0, 5.0], [4.0, 3.0, 1.0]]))
  # softmax rows: [.125 .25 .625] and [.5 .375 .125]; top-2 renormalised: 5/7 2/7 and 4/7 3/7
  plain = moe_routing.route(x, router, 2, jnp.float32).weights
  assert jnp.allclose(plain, jnp.array([[5 / 7, 2 / 7], [4 / 7, 3 / 7]]))
  with patched_routing({WEIGHT_SCALE: 2.0}):
    assert jnp.allclose(moe_routing.route(x, router, 2, jnp.float32).weights, 2 * plain)
  with patched_routing({SWITCH_GATE: True}):
    top1 = moe_routing.route(x, router, 1, jnp.float32).weights
  assert jnp.allclose(top1, jnp.array([[0.625], [0.5]]))  # not renormalised to 1
  # Outside, the library's own routing is back (its top-1 now keeps the probability too).
  assert jnp.allclose(moe_routing.route(x, router, 2, jnp.float32).weights, plain)
  assert jnp.allclose(moe_routing.route(x, router, 1, jnp.float32).weights, top1)

"""Growing a model: upcycled MoE, added experts and side adapters start as the parent function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm.config import load_experiment
from llm.model import build_model, count_params
from llm.model.factory import abstract_model
from llm.model.upcycle import grow
from llm.train.flops import parameter_counts
from tests.conftest import micro_config

TOKENS = jax.random.randint(jax.random.key(5), (2, 12), 0, 64)


def _params(model):
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _logits(model_config, params):
  graphdef, _ = nnx.split(build_model(model_config, 0), nnx.Param)
  return nnx.merge(graphdef, params)(TOKENS)


@pytest.mark.parametrize("scan", [True, False])
def test_upcycled_moe_computes_its_dense_parent(scan):
  dense = micro_config(scan_layers=scan).model
  parent = _params(build_model(dense, 1))
  moe = micro_config(scan_layers=scan).model
  moe.moe.num_experts, moe.moe.top_k = 4, 2
  child = grow(parent, moe, seed=2)
  up = child["layers"]["mlp"]["up"] if scan else child["layers"][0]["mlp"]["up"]
  assert up.shape[-3] == 4  # [..., experts, d_model, mlp_dim]
  np.testing.assert_allclose(_logits(moe, child), _logits(dense, parent), atol=1e-5)


def test_new_experts_keep_the_old_ones_and_the_router_columns():
  old_config = micro_config().model
  old_config.moe.num_experts = 4
  old = _params(build_model(old_config, 1))
  new_config = micro_config().model
  new_config.moe.num_experts, new_config.moe.new_experts = 4, 2
  new = grow(old, new_config, seed=3)
  mlp, old_mlp = new["layers"]["mlp"], old["layers"]["mlp"]
  np.testing.assert_array_equal(mlp["gate"], old_mlp["gate"])
  np.testing.assert_array_equal(mlp["router"][..., :4], old_mlp["router"])
  assert mlp["router"].shape[-1] == 6 and mlp["new_gate"].shape[1] == 2
  np.testing.assert_array_equal(mlp["new_up"], old_mlp["up"][:, :2])  # copies of experts 0, 1
  assert bool(jnp.all(jnp.isfinite(_logits(new_config, new))))


def test_a_fresh_side_adapter_adds_nothing():
  base = micro_config().model
  params = _params(build_model(base, 1))
  side = micro_config(side_adapter_dim=16).model
  grown = grow(params, side, seed=4)
  assert "side" in grown["layers"]
  np.testing.assert_allclose(_logits(side, grown), _logits(base, params), atol=1e-6)


@pytest.mark.parametrize("name,total,active", [
    ("mixtral_8x7b", 46.70e9, 12.88e9),  # published: 46.7B total, 12.9B active
    ("moe_tiny", None, None), ("tiny", None, None)])
def test_total_and_active_parameter_counts(name, total, active):
  m = load_experiment(name).model
  counts = parameter_counts(m)
  assert counts["total"] == count_params(abstract_model(m))  # the formula counts the model
  if total:
    assert counts["total"] == pytest.approx(total, rel=2e-3)
    assert counts["active"] == pytest.approx(active, rel=2e-3)
  if name == "moe_tiny":  # equal active MLP width to tiny: same active count up to the router
    tiny = parameter_counts(load_experiment("tiny").model)
    assert counts["active"] - tiny["active"] == 2 * m.d_model * m.moe.num_experts

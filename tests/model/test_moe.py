"""The MoE layer against a naive per-token loop over experts; capacity mode; auxiliary losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm.model.moe import MoE
from llm.model.moe_routing import capacity as capacity_of
from tests.conftest import micro_config


def _layer(mode="dropless", capacity_factor=1.25, experts=4, top_k=2, shared=0):
  model = micro_config().model
  model.moe.num_experts, model.moe.top_k, model.moe.mode = experts, top_k, mode
  model.moe.capacity_factor, model.moe.shared_experts = capacity_factor, shared
  return MoE(model, out_std=0.05, compute_dtype=jnp.float32, rngs=nnx.Rngs(params=3))


def _inputs(seed=0, batch=2, seq=8, d=32):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(batch, seq, d)), jnp.float32),
          jnp.asarray(rng.normal(size=(batch, seq, d)), jnp.float32))


def _weights(layer):
  return {"router": layer.router[...], "gate": layer.gate[...], "up": layer.up[...],
          "down": layer.down[...]}


def top_experts(x, router, top_k):
  """Each token's chosen experts, by sorting its router probabilities in numpy."""
  logits = np.asarray(x.reshape(-1, x.shape[-1]) @ router)
  return np.argsort(-logits, axis=-1)[:, :top_k]


def naive_moe(x, w, choices):
  """Token by token: softmax router, renormalised weights, each chosen expert's SwiGLU.
  (The choice is piecewise constant, so it is made outside differentiation.)"""
  outs = []
  for token, chosen in zip(x.reshape(-1, x.shape[-1]), choices):
    probs = jax.nn.softmax(token @ w["router"])
    total = sum(probs[e] for e in chosen)
    out = 0.0
    for e in chosen:
      hidden = jax.nn.silu(token @ w["gate"][e]) * (token @ w["up"][e])
      out = out + probs[e] / total * (hidden @ w["down"][e])
    outs.append(out)
  return jnp.stack(outs).reshape(x.shape)


def _with_weights(layer, w, x):
  graphdef, params = nnx.split(layer, nnx.Param)
  return nnx.merge(graphdef, dict(nnx.to_pure_dict(params), **w))(x)[0]


def test_dropless_equals_a_naive_loop_over_tokens_and_experts():
  layer = _layer()
  x, ct = _inputs()
  w = _weights(layer)
  with jax.default_matmul_precision("highest"):
    ours, ours_vjp = jax.vjp(lambda x, w: _with_weights(layer, w, x), x, w)
    choices = top_experts(x, w["router"], 2)
    naive, naive_vjp = jax.vjp(lambda x, w: naive_moe(x, w, choices), x, w)
    np.testing.assert_allclose(ours, naive, atol=1e-5)
    grads, naive_grads = ours_vjp(ct), naive_vjp(ct)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), grads, naive_grads)
  assert float(jnp.abs(grads[1]["router"]).max()) > 0  # the router learns through the weights


def test_ample_capacity_equals_dropless():
  x, ct = _inputs(1)
  dropless, capacity = _layer(), _layer("capacity", capacity_factor=4.0)  # same init seed
  for a, b in zip(nnx.state(dropless, nnx.Param).values(), nnx.state(capacity, nnx.Param).values()):
    np.testing.assert_array_equal(a[...], b[...])
  (y1, m1), (y2, m2) = dropless(x), capacity(x)
  np.testing.assert_allclose(y1, y2, atol=1e-6)
  assert float(m2["dropped_fraction"]) == 0.0


def counted_drops(experts: np.ndarray, num_experts: int, slots: int) -> int:
  """Priority order: every token's first choice, then every second choice; token order within."""
  taken, dropped = [0] * num_experts, 0
  for rank in range(experts.shape[1]):
    for token in range(experts.shape[0]):
      e = experts[token, rank]
      if taken[e] < slots:
        taken[e] += 1
      else:
        dropped += 1
  return dropped


@pytest.mark.parametrize("factor", [0.25, 0.5, 1.0])
def test_tight_capacity_drops_what_a_counting_reference_drops(factor):
  layer = _layer("capacity", capacity_factor=factor)
  x, _ = _inputs(2, batch=4, seq=8)
  tokens = x.reshape(-1, x.shape[-1])
  probs = jax.nn.softmax(tokens @ layer.router[...])
  experts = np.asarray(jax.lax.top_k(probs, 2)[1])
  slots = capacity_of(tokens.shape[0], 4, 2, factor)
  want = counted_drops(experts, 4, slots) / experts.size
  _, metrics = layer(x)
  assert float(metrics["dropped_fraction"]) == pytest.approx(want)
  assert want > 0 if factor < 1 else True


def test_auxiliary_losses_follow_their_formulas():
  layer = _layer()
  x, _ = _inputs(3)
  _, metrics = layer(x)
  logits = np.asarray(x.reshape(-1, 32) @ layer.router[...], np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  chosen = np.argsort(-probs, axis=-1)[:, :2]
  load = np.bincount(chosen.reshape(-1), minlength=4) / chosen.size
  np.testing.assert_allclose(metrics["load"], load, atol=1e-6)
  np.testing.assert_allclose(metrics["load_balance"], 4 * np.sum(load * probs.mean(0)), rtol=1e-5)
  lse = np.log(np.exp(logits).sum(-1))
  np.testing.assert_allclose(metrics["z_loss"], np.mean(lse**2), rtol=1e-5)
  np.testing.assert_allclose(metrics["router_entropy"], -np.mean(np.sum(probs * np.log(probs), -1)),
                             rtol=1e-5)


def test_shared_experts_add_a_dense_path():
  layer = _layer(shared=1)
  x, _ = _inputs(4)
  routed_only = _layer()(x)[0]  # same seed, same routed experts
  np.testing.assert_allclose(layer(x)[0] - routed_only, layer.shared(x), atol=1e-5)


def test_router_jitter_only_with_a_key():
  layer = _layer()
  layer.jitter = 0.1
  x, _ = _inputs(6)
  plain = layer(x)[0]
  np.testing.assert_array_equal(layer(x, None)[0], plain)  # evaluation: no noise
  assert float(jnp.abs(layer(x, jax.random.key(0))[0] - plain).max()) > 0


def test_every_second_layer_is_moe_when_unscanned():
  from llm.model import build_model
  config = micro_config(scan_layers=False)
  config.model.num_layers, config.model.moe.num_experts, config.model.moe.every = 4, 4, 2
  model = build_model(config.model, 0)
  assert [block.is_moe for block in model.layers] == [False, True, False, True]
  tokens = jax.random.randint(jax.random.key(0), (2, 8), 0, 64)
  logits, aux = model.forward_with_aux(tokens)
  assert logits.shape == (2, 8, 64) and aux["load"].shape == (4,)
  np.testing.assert_allclose(float(aux["load"].sum()), 1.0, rtol=1e-6)  # mean over MoE layers


def test_calibration_records_one_gram_per_expert_over_its_routed_tokens():
  from llm.model.capture import by_path, recording
  layer = _layer(shared=1)
  x = _inputs(seed=4)[0]
  with recording() as seen:
    layer(x)
  grams = by_path(layer, seen)
  w = {k: np.asarray(v, np.float64) for k, v in _weights(layer).items()}
  flat = np.asarray(x, np.float64).reshape(-1, 32)
  choices = top_experts(x, w["router"], 2)
  for e in range(4):
    rows = flat[(choices == e).any(axis=1)]  # the tokens routed to expert e, once each
    hidden = (rows @ w["gate"][e]) / (1 + np.exp(-(rows @ w["gate"][e]))) * (rows @ w["up"][e])
    np.testing.assert_allclose(grams["gate"][0][e], rows.T @ rows, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grams["up"][0][e], rows.T @ rows, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grams["down"][0][e], hidden.T @ hidden, rtol=1e-4, atol=1e-4)
    assert float(grams["down"][1][e]) == len(rows)
  assert grams["shared/gate"][0].shape == (32, 32)  # the shared expert sees every token
  assert float(grams["shared/gate"][1]) == 16


def test_top1_weight_is_the_router_probability_so_the_router_learns_from_the_loss():
  """Switch routing: one expert scaled by its probability (renormalised, it would be exactly 1
  and the loss would pass the router no gradient); top-2 weights still sum to 1 (Mixtral)."""
  from llm.model.moe_routing import route
  x = jax.random.normal(jax.random.PRNGKey(0), (6, 8))
  router = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
  probs = np.asarray(jax.nn.softmax(x @ router, axis=-1))
  top1 = route(x, router, 1, jnp.float32)
  np.testing.assert_allclose(np.asarray(top1.weights)[:, 0], probs.max(-1), rtol=1e-5)
  grad = jax.grad(lambda r: jnp.sum(route(x, r, 1, jnp.float32).weights * jnp.arange(6.0)[:, None]))
  assert np.abs(np.asarray(grad(router))).max() > 1e-3
  np.testing.assert_allclose(np.asarray(route(x, router, 2, jnp.float32).weights).sum(-1), 1.0,
                             rtol=1e-6)

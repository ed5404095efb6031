"""Model structure: parameter counts, logical axes, scan == loop, remat keeps gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm.model import build_model, count_params, param_logical_axes
from llm.model.factory import abstract_model
from tests.conftest import load_experiment_config, micro_config


def expected_params(m) -> int:
  """Closed-form Llama parameter count."""
  attn = m.d_model * m.head_dim * (2 * m.num_heads + 2 * m.num_kv_heads)
  per_layer = attn + 3 * m.d_model * m.mlp_dim + 2 * m.d_model
  head = 0 if m.tie_embeddings else m.d_model * m.vocab_size
  return m.num_layers * per_layer + m.vocab_size * m.d_model + m.d_model + head


@pytest.mark.parametrize("name,published", [("llama3_8b", 8_030_261_248),
                                            ("base_1b", 1_235_814_400)])
def test_real_size_configs_build_abstractly_with_published_counts(name, published):
  config = load_experiment_config(name)
  model = abstract_model(config.model)
  assert count_params(model) == expected_params(config.model) == published
  leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)


def test_small_config_is_about_25m_params():
  config = load_experiment_config("small")
  assert 20e6 < count_params(abstract_model(config.model)) < 30e6


def test_every_parameter_has_logical_axes_matching_its_rank():
  model = build_model(micro_config(tie_embeddings=False).model)
  axes = param_logical_axes(model)
  state = nnx.to_flat_state(nnx.state(model, nnx.Param))
  assert len(axes) == len(state) == 12
  for path, var in state:
    names = axes["/".join(str(k) for k in path)]
    assert len(names) == var.get_value().ndim, path
    assert (names[0] == "layers") == (path[0] == "layers")


def test_scanned_and_unrolled_layers_agree():
  scanned = build_model(micro_config(scan_layers=True).model)
  unrolled = build_model(micro_config(scan_layers=False).model)
  params = nnx.to_pure_dict(nnx.state(scanned, nnx.Param))
  layer_params = [jax.tree.map(lambda x, i=i: x[i], params["layers"]) for i in range(2)]
  nnx.update(unrolled, dict(params, layers={i: p for i, p in enumerate(layer_params)}))
  tokens = jax.random.randint(jax.random.key(0), (2, 10), 0, 64)
  np.testing.assert_allclose(scanned(tokens), unrolled(tokens), atol=1e-5)


@pytest.mark.parametrize("policy", ["full", "save_dots", "save_attn_out", "save_qkv_proj"])
def test_remat_policies_keep_gradients(policy):
  reference = build_model(micro_config().model)
  remat = build_model(micro_config(remat_policy=policy).model)
  tokens = jax.random.randint(jax.random.key(0), (2, 10), 0, 64)

  def grads(model):
    graphdef, params = nnx.split(model, nnx.Param)
    loss = lambda p: jnp.mean(nnx.merge(graphdef, p)(tokens) ** 2)
    return jax.grad(loss)(nnx.to_pure_dict(params))

  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               grads(reference), grads(remat))


def test_bfloat16_compute_stays_close_to_float32():
  f32 = build_model(micro_config().model)
  bf16 = build_model(micro_config(compute_dtype="bfloat16").model)
  tokens = jax.random.randint(jax.random.key(0), (2, 10), 0, 64)
  out = bf16(tokens)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, f32(tokens), atol=5e-2)

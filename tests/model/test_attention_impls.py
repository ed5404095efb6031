"""The model with `attention_impl=pallas` (our kernel, interpret mode) against `xla`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm.model.config_checks import check_model_config
from llm.model import build_model
from llm.model.attention_impls import resolve
from tests.conftest import micro_config

# Two packed documents in row 0, one in row 1: segment ids and positions as packing makes them.
SEGMENTS = jnp.array([[1] * 7 + [2] * 9, [1] * 16])
POSITIONS = jnp.array([list(range(7)) + list(range(9)), list(range(16))])


def _loss_and_grads(impl: str, compute_dtype: str = "float32"):
  model = build_model(micro_config(attention_impl=impl, compute_dtype=compute_dtype).model, 0)
  graphdef, params = nnx.split(model, nnx.Param)
  tokens = jax.random.randint(jax.random.key(1), (2, 17), 0, 64)

  def loss(p):
    logits = nnx.merge(graphdef, p)(tokens[:, :-1], POSITIONS, SEGMENTS)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1))

  return jax.value_and_grad(loss)(nnx.to_pure_dict(params))


def test_pallas_gives_the_loss_and_gradients_of_xla():
  (xla_loss, xla_grads), (pallas_loss, pallas_grads) = (_loss_and_grads("xla"),
                                                        _loss_and_grads("pallas"))
  assert abs(float(xla_loss) - float(pallas_loss)) <= 1e-5
  diffs = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), xla_grads, pallas_grads)
  assert max(jax.tree.leaves(diffs)) <= 1e-5


def test_decoding_with_a_cache_falls_back_to_xla():
  tokens = jax.random.randint(jax.random.key(2), (1, 6), 0, 64)
  logits = []
  for impl in ("pallas", "xla"):
    model = build_model(micro_config(attention_impl=impl).model, 0)
    logits.append(model.decode(tokens, model.init_cache(1, 8), 0)[0])
  np.testing.assert_allclose(logits[0], logits[1], atol=1e-6)


@pytest.mark.parametrize("impl", ["pallas", "triton", "cudnn", "auto"])
def test_config_accepts_every_implementation(impl):
  c = micro_config(attention_impl=impl)
  check_model_config(c)


def test_auto_is_xla_on_cpu():
  assert jax.default_backend() == "cpu"
  assert resolve("auto", jnp.bfloat16) == "xla"
  assert resolve("pallas", jnp.float32) == "pallas"

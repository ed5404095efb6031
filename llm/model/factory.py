"""Building the model from a config, and introspection helpers."""

import jax
from flax import nnx

from llm.model.transformer import Transformer


def build_model(model_config, seed: int = 0) -> Transformer:
  """Initialises a Transformer with float32 parameters (the optimizer's master weights)."""
  return Transformer(model_config, nnx.Rngs(params=seed))


def abstract_model(model_config) -> Transformer:
  """The model's shapes and dtypes without allocating: nnx.eval_shape of init."""
  return nnx.eval_shape(lambda: build_model(model_config))


def count_params(model) -> int:
  """Total number of parameter scalars."""
  return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def param_logical_axes(model) -> dict:
  """Maps each parameter path ('layers/attn/q_proj', ...) to its logical axis names."""
  return {"/".join(str(k) for k in path): var.get_metadata()["logical_axes"]
          for path, var in nnx.iter_graph(model) if isinstance(var, nnx.Param)}

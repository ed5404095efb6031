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


def with_fresh_adapters(model_config, params: dict, seed: int = 0) -> dict:
  """`params` of a model without adapters, plus fresh ones for model_config.lora (B = 0, so
  the outputs are unchanged): LoRA on top of an imported or pretrained model."""
  fresh = nnx.to_pure_dict(nnx.state(build_model(model_config, seed), nnx.Param))

  def fill(fresh_tree, given):
    out = {}
    for key, value in fresh_tree.items():
      if str(key).endswith("_lora"):
        out[key] = value
      elif isinstance(value, dict):
        out[key] = fill(value, given[key])
      else:
        out[key] = given[key]
    return out

  return fill(fresh, params)

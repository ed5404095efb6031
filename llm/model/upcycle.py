"""Growing trained parameters into a larger config: sparse upcycling, new experts, side adapters.

    params = grow(old_params, new_model_config, seed)

Every parameter of the new config is taken from the old tree where it can be:
- same path and shape: copied (attention, norms, embeddings, experts that already exist);
- a dense MLP weight where the new model has experts (the new shape is the old one with an
  experts axis inserted): copied into every expert (sparse upcycling, Komatsuzaki et al.);
- a router that gained columns: the old columns kept, the new ones freshly initialised;
- `new_gate/new_up/new_down` (experts added for continual learning): copies of the existing
  experts, taken in turn, so new experts start from what the layer knows;
- anything else (a fresh router, side adapters): the new config's own initialisation.

With renormalised top-k weights, an upcycled layer computes exactly its dense parent; a fresh
side adapter adds zero. So the grown model starts as the old function.
"""

import jax.numpy as jnp
from flax import nnx

from llm.model.factory import build_model


def _inserted_axis(old_shape, new_shape):
  """The axis whose insertion turns old_shape into new_shape, or None."""
  if len(new_shape) != len(old_shape) + 1:
    return None
  for axis in range(len(new_shape)):
    if new_shape[:axis] + new_shape[axis + 1:] == old_shape:
      return axis
  return None


def _lookup(tree, keys):
  for key in keys:
    if not isinstance(tree, dict) or key not in tree:
      return None
    tree = tree[key]
  return tree


def _take(old, fresh, keys):
  name = keys[-1]
  same = _lookup(old, keys)
  if same is not None and same.shape == fresh.shape:
    return jnp.asarray(same, fresh.dtype)
  if same is not None:
    axis = _inserted_axis(same.shape, fresh.shape)
    if axis is not None:  # dense MLP weight -> every expert
      return jnp.broadcast_to(jnp.expand_dims(same, axis), fresh.shape).astype(fresh.dtype)
    if name == "router" and same.shape[:-1] == fresh.shape[:-1]:
      return fresh.at[..., :same.shape[-1]].set(same)
  if name.startswith("new_"):
    experts = _lookup(old, keys[:-1] + [name[len("new_"):]])
    new_in_old = _lookup(old, keys)
    if experts is not None and new_in_old is None:
      axis = fresh.ndim - 3  # expert weights are [..., experts, in, out]
      index = jnp.arange(fresh.shape[axis]) % experts.shape[axis]
      return jnp.take(experts, index, axis=axis).astype(fresh.dtype)
  return fresh


def grow(old_params: dict, model_config, seed: int = 0) -> dict:
  """Parameters for `model_config`, filled from `old_params` as the module docstring says."""
  fresh = nnx.to_pure_dict(nnx.state(build_model(model_config, seed), nnx.Param))

  def fill(tree, keys):
    return {k: fill(v, keys + [k]) if isinstance(v, dict) else _take(old_params, v, keys + [k])
            for k, v in tree.items()}

  return fill(fresh, [])

"""Logical axis rules: which mesh axes each named array dimension is split over.

Parameters carry logical names (`param_logical_axes`: "embed", "mlp", "q_heads", ...). One
table maps them to mesh axes; optimizer state is placed like the parameter it belongs to;
batches are split over the data-parallel axes. A dimension that its mesh axes do not divide is
a clear error, not a silent replication.
"""

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

# the data-parallel mesh axes a batch is split over, in order
BATCH_AXES = ("data", "fsdp", "expert")

# logical name -> mesh axes (in order); absent or () means replicated.
DEFAULT_RULES = {
    "batch": BATCH_AXES,
    "embed": ("fsdp",),
    "vocab": ("tensor",),
    "mlp": ("tensor",),
    "q_heads": ("tensor",),
    "kv_heads": ("tensor",),
    "experts": ("expert",),
    "layers": ("stage",),  # pipeline stages hold consecutive layers
    "head_dim": (),
    "norm": (),
}


def partition_spec(logical_axes, shape, mesh, rules=None) -> P:
  """The PartitionSpec of an array with these logical axes; mesh axes of size 1 are dropped
  and no mesh axis is used twice."""
  rules = DEFAULT_RULES if rules is None else rules
  used, spec = set(), []
  for name, dim in zip(logical_axes, shape):
    axes = tuple(a for a in rules.get(name, ()) if mesh.shape[a] > 1 and a not in used)
    size = 1
    for a in axes:
      size *= mesh.shape[a]
    if dim % size:
      raise ValueError(f"dimension {name!r} of size {dim} cannot be split over mesh axes "
                       f"{axes} ({size} devices): change config.parallel or the model shape")
    used.update(axes)
    spec.append(axes[0] if len(axes) == 1 else (axes or None))
  return P(*spec)


def _names(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def state_shardings(state_shapes, logical_axes: dict, mesh, rules=None):
  """NamedShardings for a train state {"step", "params", "opt_state", "rng"}.

  `logical_axes` maps "a/b/c" parameter paths to names. An optimizer-state leaf whose path
  ends with a parameter's path and has its shape (Adam's mu and nu) is placed like that
  parameter; every other leaf (counts, scalars, rng) is replicated.
  """
  params = {tuple(path.split("/")): axes for path, axes in logical_axes.items()}

  def place(path, leaf):
    names = _names(path)
    for start in range(len(names)):
      axes = params.get(names[start:])
      if axes is not None and len(axes) == len(leaf.shape):
        return NamedSharding(mesh, partition_spec(axes, leaf.shape, mesh, rules))
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(place, state_shapes)


def batch_sharding(mesh, rules=None) -> NamedSharding:
  """Batches [batch, length]: split over the data-parallel axes."""
  rules = DEFAULT_RULES if rules is None else rules
  axes = tuple(a for a in rules["batch"] if mesh.shape[a] > 1)
  return NamedSharding(mesh, P(axes or None))

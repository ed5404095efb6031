"""The mixture-of-experts feed-forward layer (Switch/Mixtral style), replacing a dense MLP.

Routing and the expert computation are the pure functions of `moe_routing.py`. On a mesh with
an `expert` axis > 1 the layer runs inside shard_map, every device holding E / n experts:

- dropless: each device gathers the tokens of its expert group (all_gather over `expert`),
  runs its own experts on the rows routed to them, and a reduce-scatter returns each token's
  sum to the device that holds it;
- capacity: each device fills per-expert buffers from its own tokens, an all_to_all sends
  every buffer to its expert's device and a second one brings the outputs back (GShard).

Routing statistics are summed over every data-parallel device before the auxiliary losses
are formed, so they equal the single-device values. Experts beyond `num_experts` can be added
as `new_experts` (their own parameters, for continual learning with the old ones frozen).
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P

from llm.model import capture
from llm.model import moe_routing as routing_fns
from llm.model.mlp import SwiGLU
from llm.model.moe_routing import ExpertWeights
from llm.parallel.sharding import BATCH_AXES


def _expert_params(count, d_model, mlp_dim, init_std, out_std, rngs):
  normal = jax.nn.initializers.normal
  axes_in, axes_out = ("experts", "embed", "mlp"), ("experts", "mlp", "embed")
  return (nnx.Param(normal(init_std)(rngs.params(), (count, d_model, mlp_dim)),
                    logical_axes=axes_in),
          nnx.Param(normal(init_std)(rngs.params(), (count, d_model, mlp_dim)),
                    logical_axes=axes_in),
          nnx.Param(normal(out_std)(rngs.params(), (count, mlp_dim, d_model)),
                    logical_axes=axes_out))


class MoE(nnx.Module):

  def __init__(self, model_config, *, out_std: float, compute_dtype, rngs: nnx.Rngs):
    """`model_config` is the `config.model` section; its `moe` holds the expert settings."""
    moe = model_config.moe
    d_model, init_std = model_config.d_model, model_config.init_std
    mlp_dim = moe.expert_mlp_dim or model_config.mlp_dim
    total = moe.num_experts + moe.new_experts
    self.router = nnx.Param(jax.nn.initializers.normal(init_std)(
        rngs.params(), (d_model, total)), logical_axes=("embed", "router"))
    self.gate, self.up, self.down = _expert_params(moe.num_experts, d_model, mlp_dim,
                                                   init_std, out_std, rngs)
    if moe.new_experts:
      self.new_gate, self.new_up, self.new_down = _expert_params(
          moe.new_experts, d_model, mlp_dim, init_std, out_std, rngs)
    self.shared = (SwiGLU(d_model, mlp_dim * moe.shared_experts, init_std=init_std,
                          out_std=out_std, compute_dtype=compute_dtype, rngs=rngs)
                   if moe.shared_experts else None)
    self.num_experts, self.top_k = total, moe.top_k
    self.mode, self.capacity_factor = moe.mode, moe.capacity_factor
    self.jitter = moe.router_jitter
    self.compute_dtype = compute_dtype

  def experts(self) -> ExpertWeights:
    w = ExpertWeights(self.gate[...], self.up[...], self.down[...])
    if hasattr(self, "new_gate"):
      new = (self.new_gate[...], self.new_up[...], self.new_down[...])
      w = ExpertWeights(*(jnp.concatenate([a, b]) for a, b in zip(w, new)))
    return w

  def __call__(self, x, rng=None):
    """x [batch, seq, d] -> (y [batch, seq, d] float32, this layer's routing metrics)."""
    b, t, d = x.shape
    axes = _expert_mesh_axes(b)
    if axes is None:
      y, stats, dropped = self._local(x.reshape(b * t, d), rng)
      y = y.reshape(b, t, d)
    else:
      y, stats, dropped = self._expert_parallel(x, rng, axes)
    if self.shared is not None:
      y = y + self.shared(x)
    aux = routing_fns.auxiliary_losses(stats, self.num_experts, self.top_k)
    assignments = jnp.maximum(stats["tokens"] * self.top_k, 1.0)
    return y, dict(aux, dropped_fraction=dropped / assignments)

  def _apply(self, x, routing, weights, offset=0):
    if self.mode == "dropless":
      return routing_fns.dropless(x, routing, weights, self.compute_dtype, offset), 0.0
    return routing_fns.with_capacity(x, routing, weights, self.compute_dtype,
                                     self.capacity_factor)

  def _local(self, x, rng):
    routing = routing_fns.route(x, self.router[...], self.top_k, self.compute_dtype,
                                self.jitter, rng)
    y, dropped = self._apply(x, routing, self.experts())
    if capture.is_recording():
      self._record_expert_inputs(x, routing)
    return y, routing_fns.routing_statistics(routing, self.num_experts), dropped

  def _record_expert_inputs(self, x, routing) -> None:
    """Per-expert input grams for quantization, split between the original and new experts."""
    inputs, hidden, tokens = routing_fns.expert_input_grams(x, routing, self.experts())
    first = self.gate.shape[0]
    names = (("gate", "up", "down", slice(0, first)),
             ("new_gate", "new_up", "new_down", slice(first, None)))
    for gate, up, down, experts in names[:1 + hasattr(self, "new_gate")]:
      for name, gram in ((gate, inputs), (up, inputs), (down, hidden)):
        capture.add_gram(self, name, gram[experts], tokens[experts])

  def _expert_parallel(self, x, rng, batch_axes):
    """shard_map over the data-parallel axes; experts split over `expert`."""
    rows = P(batch_axes, None, None)
    manual = set(batch_axes)
    k, mode, factor, cd = self.top_k, self.mode, self.capacity_factor, self.compute_dtype
    num_experts, jitter = self.num_experts, self.jitter

    def per_device(x, router, gate, up, down, rng):
      b, t, d = x.shape
      tokens = x.reshape(b * t, d)
      if rng is not None:
        rng = jax.random.fold_in(rng, _flat_index(batch_axes))
      routing = routing_fns.route(tokens, router, k, cd, jitter, rng)
      stats = jax.lax.psum(routing_fns.routing_statistics(routing, num_experts),
                           tuple(batch_axes))
      w = ExpertWeights(gate, up, down)
      if mode == "dropless":
        group = jax.tree.map(lambda a: jax.lax.all_gather(a, "expert", tiled=True),
                             (tokens, routing))
        offset = jax.lax.axis_index("expert") * gate.shape[0]
        partial = routing_fns.dropless(group[0], group[1], w, cd, offset)
        y = jax.lax.psum_scatter(partial, "expert", scatter_dimension=0, tiled=True)
        dropped = jnp.zeros((), jnp.float32)
      else:
        slots = routing_fns.capacity(tokens.shape[0], num_experts, k, factor)
        buffers, kept, slot = routing_fns.dispatch(tokens, routing, num_experts, slots)
        mine = jax.lax.all_to_all(buffers, "expert", 0, 1, tiled=True)
        done = routing_fns.expert_mlps(mine, w, cd)
        back = jax.lax.all_to_all(done, "expert", 1, 0, tiled=True)
        y = routing_fns.combine(back, routing, kept, slot)
        dropped = jax.lax.psum(jnp.sum(~kept).astype(jnp.float32), tuple(batch_axes))
      return y.reshape(b, t, d), stats, dropped

    experts = P("expert", None, None)
    w = self.experts()
    return jax.shard_map(
        per_device, in_specs=(rows, P(), experts, experts, experts, P()),
        out_specs=(rows, P(), P()), axis_names=manual, check_vma=False)(
            x, self.router[...], w.gate, w.up, w.down, rng)


def _flat_index(axes) -> jax.Array:
  index = jnp.zeros((), jnp.int32)
  for axis in axes:
    index = index * jax.lax.axis_size(axis) + jax.lax.axis_index(axis)
  return index


def _expert_mesh_axes(batch: int):
  """The data-parallel axes (including `expert`) when the traced mesh splits experts; else None."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return None
  sizes = {name: size for name, size, kind in zip(mesh.axis_names, mesh.axis_sizes,
                                                  mesh.axis_types)
           if kind != jax.sharding.AxisType.Manual}
  if sizes.get("expert", 1) <= 1:
    return None
  axes = tuple(a for a in BATCH_AXES if sizes.get(a, 1) > 1)
  if batch % math.prod(sizes[a] for a in axes):
    raise ValueError(f"batch {batch} does not split over the data-parallel axes {axes}: "
                     "make train.batch_size a multiple of their product")
  return axes

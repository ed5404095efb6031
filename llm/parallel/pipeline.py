"""Pipeline parallelism over the mesh's `stage` axis: the GPipe schedule.

The layers are cut into S stages of consecutive layers (stage s holds layers
[s*L/S, (s+1)*L/S), the `layers` dimension sharded over `stage`), the batch into M
micro-batches. At tick t stage s runs micro-batch t - s: stage 0 reads a new micro-batch,
every other stage the activation stage s-1 sent it on the previous tick (a ppermute ring).
After M + S - 1 ticks the last stage holds every output. Each stage idles for S - 1 ticks, the
bubble: (S - 1) / (M + S - 1) of the time. Reverse-mode autodiff of the loop gives GPipe's
backward (all forwards, then all backwards). Only the `stage` axis is manual (shard_map); data,
FSDP and tensor parallelism inside a stage stay with the compiler.
"""

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

STAGE = "stage"


def bubble_fraction(stages: int, microbatches: int) -> float:
  """The share of ticks a stage idles in the GPipe schedule."""
  return (stages - 1) / (microbatches + stages - 1)


def gpipe(stage_fn, stage_params, x, extras, stages: int):
  """Runs `stage_fn(params_of_stage, x_mb, extras_mb) -> x_mb` as a pipeline.

  stage_params: pytree, leading dimension `stages` (sharded over `stage`); x: [M, ...]
  micro-batches; extras: pytree of [M, ...] per-micro-batch inputs every stage may read
  (positions, masks). Returns [M, ...], the last stage's outputs. Call under jax.set_mesh.
  """
  microbatches = x.shape[0]
  ring = [(i, (i + 1) % stages) for i in range(stages)]

  def per_stage(params, x, extras):
    params = jax.tree.map(lambda p: p[0], params)
    stage = jax.lax.axis_index(STAGE)

    def tick(t, carry):
      incoming, outputs = carry
      mb = jnp.clip(t - stage, 0, microbatches - 1)  # the micro-batch this stage runs now
      inputs = jnp.where(stage == 0, x[jnp.minimum(t, microbatches - 1)], incoming)
      out = stage_fn(params, inputs, jax.tree.map(lambda e: e[mb], extras))
      done = t - (stages - 1)
      outputs = jnp.where((stage == stages - 1) & (done >= 0),
                          outputs.at[jnp.clip(done, 0, microbatches - 1)].set(out), outputs)
      return jax.lax.ppermute(out, STAGE, ring), outputs

    carry = (jnp.zeros_like(x[0]), jnp.zeros_like(x))
    _, outputs = jax.lax.fori_loop(0, microbatches + stages - 1, tick, carry)
    # Only the last stage holds the outputs: a masked sum hands them to every stage.
    return jax.lax.psum(jnp.where(stage == stages - 1, outputs, jnp.zeros_like(outputs)), STAGE)

  return jax.shard_map(per_stage, in_specs=(P(STAGE), P(), P()), out_specs=P(),
                       axis_names={STAGE}, check_vma=False)(stage_params, x, extras)


def mesh_stages() -> int:
  """The size of the `stage` axis of the mesh being traced under (1 outside any mesh)."""
  mesh = jax.sharding.get_abstract_mesh()
  return 1 if mesh.empty else dict(mesh.shape).get(STAGE, 1)

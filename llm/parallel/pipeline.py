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

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from llm.parallel.sharding import BATCH_AXES

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


def one_f_one_b(stage_fn, stage_params, x, extras, stages: int):
  """The same pipeline as `gpipe` with the 1F1B schedule for the backward pass.

  Forward: the GPipe ticks, keeping no activations. Backward (a custom VJP): M + 2S - 2 ticks;
  at tick t stage s recomputes the forward of micro-batch t - s (keeping its input) and runs
  the backward of micro-batch t - 2S + 2 + s with the cotangent stage s+1 sent on the previous
  tick. A stage therefore holds at most 2S - 1 micro-batch inputs, however many micro-batches
  there are (GPipe's backward holds all M).
  """

  @jax.custom_vjp
  def run(stage_params, x, extras):
    return gpipe(stage_fn, stage_params, x, extras, stages)

  def forward(stage_params, x, extras):
    return run(stage_params, x, extras), (stage_params, x, extras)

  def backward(residuals, g_out):
    stage_params, x, extras = residuals
    grads, dx = _one_f_one_b_backward(stage_fn, stage_params, x, extras, g_out, stages)
    return grads, dx, jax.tree.map(_zero_cotangent, extras)

  run.defvjp(forward, backward)
  return run(stage_params, x, extras)


def one_f_one_b_slots(stages: int) -> int:
  """Micro-batch inputs a stage keeps for the 1F1B backward (a ring of slots, micro-batch m in
  slot m % slots): 2S - 1."""
  return 2 * stages - 1


def one_f_one_b_tick(t, stage, stages: int):
  """(forward, backward) micro-batch that `stage` runs at tick t of the 1F1B backward; one
  outside [0, M) means idle. Python or traced integers."""
  return t - stage, t - 2 * stages + 2 + stage


def _zero_cotangent(a):
  if jnp.issubdtype(a.dtype, jnp.floating):
    return jnp.zeros_like(a)
  return np.zeros(a.shape, jax.dtypes.float0)


def _one_f_one_b_backward(stage_fn, stage_params, x, extras, g_out, stages: int):
  microbatches = x.shape[0]
  slots = one_f_one_b_slots(stages)
  forward_ring = [(i, (i + 1) % stages) for i in range(stages)]
  backward_ring = [(i, (i - 1) % stages) for i in range(stages)]

  def per_stage(params, x, extras, g_out):
    params = jax.tree.map(lambda p: p[0], params)
    stage = jax.lax.axis_index(STAGE)
    pick = lambda tree, i: jax.tree.map(lambda e: e[i], tree)  # noqa: E731

    def tick(t, carry):
      incoming, cot_incoming, saved, grads, dx = carry
      f, b = one_f_one_b_tick(t, stage, stages)
      f_ok, fi = (f >= 0) & (f < microbatches), jnp.clip(f, 0, microbatches - 1)
      inputs = jnp.where(stage == 0, x[fi], incoming)
      out = stage_fn(params, inputs, pick(extras, fi))
      saved = jnp.where(f_ok, saved.at[fi % slots].set(inputs), saved)
      b_ok, bi = (b >= 0) & (b < microbatches), jnp.clip(b, 0, microbatches - 1)
      cot = jnp.where(stage == stages - 1, g_out[bi], cot_incoming)
      _, vjp = jax.vjp(lambda p, h: stage_fn(p, h, pick(extras, bi)), params, saved[bi % slots])
      d_params, d_inputs = vjp(cot)
      grads = jax.tree.map(lambda g, d: g + jnp.where(b_ok, d, jnp.zeros_like(d)), grads,
                           d_params)
      dx = jnp.where(b_ok & (stage == 0), dx.at[bi].set(d_inputs), dx)
      return (jax.lax.ppermute(out, STAGE, forward_ring),
              jax.lax.ppermute(d_inputs, STAGE, backward_ring), saved, grads, dx)

    carry = (jnp.zeros_like(x[0]), jnp.zeros_like(x[0]),
             jnp.zeros((slots,) + x.shape[1:], x.dtype), jax.tree.map(jnp.zeros_like, params),
             jnp.zeros_like(x))
    _, _, _, grads, dx = jax.lax.fori_loop(0, microbatches + 2 * stages - 2, tick, carry)
    dx = jax.lax.psum(jnp.where(stage == 0, dx, jnp.zeros_like(dx)), STAGE)
    return jax.tree.map(lambda g: g[None], grads), dx

  return jax.shard_map(per_stage, in_specs=(P(STAGE), P(), P(), P()),
                       out_specs=(P(STAGE), P()), axis_names={STAGE},
                       check_vma=False)(stage_params, x, extras, g_out)


def constrain_activations(x):
  """Pins activations [batch, ...] to the data-parallel axes of the traced mesh at a block
  boundary, so the compiler never leaves them replicated; a no-op outside a mesh."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  sizes = dict(mesh.shape)
  axes = tuple(a for a in BATCH_AXES if sizes.get(a, 1) > 1)
  if not axes or x.shape[0] % math.prod(sizes[a] for a in axes):
    return x
  return jax.lax.with_sharding_constraint(x, P(axes, *([None] * (x.ndim - 1))))

"""Placing the train state and batches on the device mesh (config.parallel, llm/parallel)."""

import dataclasses
import logging

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from llm.parallel import batch_sharding, make_mesh, state_shardings
from llm.parallel.distributed import barrier
from llm.parallel.pipeline import bubble_fraction
from llm.train.task import Task


@dataclasses.dataclass
class Placement:
  mesh: object
  state: dict
  frozen: object
  step_shardings: tuple  # (state, frozen, batch, replicated) for make_train_step
  batch: NamedSharding

  def put_batch(self, batch: dict) -> dict:
    """A host batch as one global array split over the data-parallel axes. With several
    processes, `batch` is this process's part (see llm/data/loader.py)."""
    if jax.process_count() == 1:
      return jax.device_put(batch, self.batch)
    return {k: jax.make_array_from_process_local_data(self.batch, v) for k, v in batch.items()}


def place_on_mesh(config, task: Task, state: dict, frozen) -> Placement:
  """Builds the mesh and moves `state` and `frozen` onto it: parameters (trainable or frozen)
  by their logical axes (`task.logical_axes()`), optimizer state like its parameters,
  everything else replicated."""
  mesh = make_mesh(config.parallel)
  logging.info("mesh %s over %d devices", dict(mesh.shape), mesh.size)
  stages = mesh.shape["stage"]
  if stages > 1:
    m = config.model
    logging.info("pipeline: %d stages, %d micro-batches, %s schedule; bubble (S-1)/(M+S-1) = "
                 "%.3f", stages, m.pipeline_microbatches, m.pipeline_schedule,
                 bubble_fraction(stages, m.pipeline_microbatches))
  logical = task.logical_axes()
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  state_sh = state_shardings(shapes, logical, mesh)
  frozen_sh = state_shardings(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                           frozen), logical, mesh)
  replicated = NamedSharding(mesh, P())
  batch = batch_sharding(mesh)
  barrier("llm_place_on_mesh", 120)  # device_put checks across processes that states agree
  return Placement(mesh, jax.device_put(state, state_sh), jax.device_put(frozen, frozen_sh),
                   (state_sh, frozen_sh, batch, replicated), batch)

"""The device mesh, from config.parallel: sizes of the axes data, fsdp, tensor, expert, stage.

One axis may be -1 ("the rest of the devices"); the product must equal the number of devices.
Axes are Auto (GSPMD): shardings are given at jit boundaries and XLA propagates them.
"""

import math

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

MESH_AXES = ("data", "fsdp", "tensor", "expert", "stage")


def mesh_shape(parallel_config, device_count: int) -> dict[str, int]:
  """{axis: size}, with a -1 axis resolved; a clear error when the sizes do not fit."""
  sizes = {axis: int(parallel_config[axis]) for axis in MESH_AXES}
  free = [axis for axis, size in sizes.items() if size == -1]
  if len(free) > 1 or any(size == 0 or size < -1 for size in sizes.values()):
    raise ValueError(f"config.parallel {sizes}: sizes must be >= 1, with at most one -1 "
                     "(meaning: the remaining devices)")
  fixed = math.prod(size for size in sizes.values() if size != -1)
  if free:
    if device_count % fixed:
      raise ValueError(f"config.parallel {sizes}: {device_count} devices do not divide by "
                       f"the fixed axes' product {fixed}")
    sizes[free[0]] = device_count // fixed
  if math.prod(sizes.values()) != device_count:
    raise ValueError(f"config.parallel {sizes}: the product {math.prod(sizes.values())} must "
                     f"equal the number of devices, {device_count}; set one axis to -1 to "
                     "take the rest")
  return sizes


def make_mesh(parallel_config, devices=None) -> Mesh:
  """The 5-axis mesh over `devices` (all devices by default)."""
  if devices is None:
    count = int(parallel_config.get("num_devices", 0) or 0) if hasattr(parallel_config, "get") else 0
    devices = jax.devices()[:count] if count else jax.devices()
  devices = list(devices)
  sizes = mesh_shape(parallel_config, len(devices))
  grid = np.asarray(devices).reshape(tuple(sizes[a] for a in MESH_AXES))
  return Mesh(grid, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES))

"""One device mesh for data, FSDP, tensor, expert and pipeline parallelism, and the logical
axis rules that place parameters, optimizer state and batches on it."""

from llm.parallel.mesh import MESH_AXES, make_mesh, mesh_shape
from llm.parallel.sharding import BATCH_AXES, batch_sharding, state_shardings

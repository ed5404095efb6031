"""Multi-process runs: `jax.distributed.initialize` from the environment.

  JAX_COORDINATOR_ADDRESS=host:port JAX_NUM_PROCESSES=N JAX_PROCESS_ID=i  (explicit: what
  launch/local.py and launch/gke_jobset.py set), or LLM_DISTRIBUTED=auto (launch/tpu_vm.sh)
  and Slurm jobs of several tasks (launch/slurm.sh), where JAX finds the cluster itself. Call
  before any other JAX work. On CPU, collectives across processes go through gloo.
"""

import logging
import os

import jax


def initialize_from_env() -> bool:
  """Joins the cluster the environment describes; False (and nothing done) for one process."""
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  cluster = (os.environ.get("LLM_DISTRIBUTED") == "auto" or
             int(os.environ.get("SLURM_NTASKS", "1")) > 1)
  if not address and not cluster:
    return False
  # Only CPU collectives use this; setting it must not touch a backend before initialize.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if address:
    jax.distributed.initialize(coordinator_address=address,
                               num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAX_PROCESS_ID"]))
  else:
    jax.distributed.initialize()  # Slurm or TPU: JAX reads the cluster from the environment
  logging.info("process %d of %d, %d local and %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def barrier(name: str, timeout_seconds: int = 600) -> None:
  """Waits until every process gets here (through the coordination service, not a device
  collective). The first collective across processes opens gloo/NCCL contexts, which time out
  after 30 s if one process arrives much later (e.g. while another compiles): wait first."""
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # the coordination client has no public accessor yet
  distributed.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_seconds * 1000)

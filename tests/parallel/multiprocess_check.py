"""One process of a multi-process run of the micro model (see test_layouts.py): joins the
cluster from JAX_* environment variables, trains 3 steps on the given layout over all global
devices, and process 0 prints the losses as JSON.

  JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=i \\
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python multiprocess_check.py LAYOUT
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from llm.parallel.distributed import initialize_from_env  # noqa: E402

initialize_from_env()

import json  # noqa: E402

import jax  # noqa: E402

from tests.parallel.layouts_check import parse, run  # noqa: E402

if __name__ == "__main__":
  losses, _, _ = run(parse(sys.argv[1]), sys.argv[2])
  if jax.process_index() == 0:
    print("RESULT " + json.dumps({"losses": losses, "processes": jax.process_count(),
                                  "devices": jax.device_count()}))

"""Per-device bytes of parameters + optimizer state for each mesh layout, on 8 CPU devices:
exactly from the shardings, and as the compiled train step's memory analysis reports its
arguments (state + batch) and temporaries.

  python experiments/bench/sharding_memory.py --json OUT.json [--config small]
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import argparse  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from llm.config import load_experiment  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.parallel import batch_sharding, make_mesh, state_shardings  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.optimizer import build_optimizer  # noqa: E402
from llm.train.step import init_state, make_train_step  # noqa: E402

LAYOUTS = ["num_devices=1", "data=8", "fsdp=8", "data=2,fsdp=2,tensor=2", "tensor=4,data=2",
           "fsdp=4,tensor=2"]


def measure(config_name: str, spec: str, batch_size: int) -> dict:
  config = load_experiment(config_name)
  config.parallel.data = 1
  for item in spec.split(","):
    key, value = item.split("=")
    config.parallel[key] = int(value)
  config.train.batch_size = batch_size
  seq = config.data.seq_len
  rows = {k: np.zeros((batch_size, seq), np.int32)
          for k in ("inputs", "targets", "segment_ids", "positions", "loss_mask")}
  task = LMTask(config, rows)
  tx, schedule = build_optimizer(config.optim, config.train.steps)
  params = task.init(jax.random.PRNGKey(0))[0]  # concrete: init draws its seed from the key
  shapes = jax.eval_shape(lambda: init_state(params, tx, jax.random.PRNGKey(0)))
  mesh = make_mesh(config.parallel)
  state_sh = state_shardings(shapes, task.logical_axes(), mesh)
  batch_sh, replicated = batch_sharding(mesh), NamedSharding(mesh, P())
  exact = sum(int(np.prod(sh.shard_shape(leaf.shape))) * leaf.dtype.itemsize
              for leaf, sh in zip(jax.tree.leaves((shapes["params"], shapes["opt_state"])),
                                  jax.tree.leaves((state_sh["params"], state_sh["opt_state"]))))
  step = make_train_step(task, tx, schedule, 1, (state_sh, {}, batch_sh, replicated))
  args = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                      shapes, state_sh)
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sh) for k, v in rows.items()}
  stats = step.lower(args, {}, batch).compile().memory_analysis()
  return {"layout": spec, "devices": mesh.size,
          "params_and_optimizer_bytes_per_device": exact,
          "compiled_argument_bytes": getattr(stats, "argument_size_in_bytes", None),
          "compiled_temp_bytes": getattr(stats, "temp_size_in_bytes", None)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--config", default="small")
  parser.add_argument("--batch_size", type=int, default=8)
  args = parser.parse_args()
  runs = [measure(args.config, spec, args.batch_size) for spec in LAYOUTS]
  one = runs[0]["params_and_optimizer_bytes_per_device"]
  for run in runs:
    run["fraction_of_one_device"] = round(run["params_and_optimizer_bytes_per_device"] / one, 4)
    print(run, flush=True)
  write_json_atomic(args.json, {"config": args.config, "runs": runs}, indent=2)


if __name__ == "__main__":
  main()

"""The GPipe bubble, measured: step time of the pipeline against micro-batch count, next to the
formula (S - 1) / (M + S - 1).

  python experiments/bench/pipeline_bubble.py --json OUT.json [--stages 2]

The schedule takes M + S - 1 ticks, so its time is a line in M: time = a * M + b, where a is
one tick and b the bubble's S - 1 ticks plus fixed overhead. The least-squares fit over several
M gives the measured bubble b / (a * M + b) and b / a in ticks, to set against S - 1. It needs
S devices that really run at once (GPUs, TPU chips): fake CPU devices sharing two cores give
noise and cache effects, not the schedule.
"""

import os
import sys

STAGES = int(sys.argv[sys.argv.index("--stages") + 1]) if "--stages" in sys.argv else 2
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={STAGES} "
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from llm.parallel.pipeline import bubble_fraction, gpipe  # noqa: E402


def stage_fn(weights, x, extras):
  del extras
  for i in range(weights.shape[0]):
    x = jnp.tanh(x @ weights[i])
  return x


def fastest(fn, *args, repeats: int) -> float:
  fn(*args).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(*args).block_until_ready()
    times.append(time.perf_counter() - start)
  return min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--stages", type=int, default=2)
  parser.add_argument("--microbatches", default="1,2,4,8,16")
  parser.add_argument("--width", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  s, d = args.stages, args.width
  mesh = Mesh(np.array(jax.devices()[:s]), ("stage",), axis_types=(AxisType.Auto,))
  weights = jnp.asarray(np.random.default_rng(0).normal(size=(s, 4, d, d)) / 20, jnp.float32)
  batch = jnp.ones((64, d), jnp.float32)
  runs = []
  with jax.set_mesh(mesh):
    placed = jax.device_put(weights, NamedSharding(mesh, P("stage")))
    for m in (int(v) for v in args.microbatches.split(",")):
      xs = jnp.ones((m,) + batch.shape, jnp.float32)
      step = jax.jit(lambda w, x, m=m: gpipe(stage_fn, w, x, (jnp.zeros((m, 1)),), s))
      seconds = fastest(step, placed, xs, repeats=args.repeats)
      runs.append({"microbatches": m, "seconds": seconds, "formula": bubble_fraction(s, m)})
  ms = np.array([r["microbatches"] for r in runs], float)
  slope, intercept = np.polyfit(ms, [r["seconds"] for r in runs], 1)
  for r in runs:
    r["measured_bubble"] = intercept / (slope * r["microbatches"] + intercept)
    print(r, flush=True)
  result = {"stages": s, "cpu_count": os.cpu_count(),
            "fit": {"seconds_per_microbatch": slope, "intercept_seconds": intercept,
                    "intercept_in_ticks": intercept / slope}, "runs": runs}
  with open(args.json + ".tmp", "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  os.replace(args.json + ".tmp", args.json)
  print(json.dumps(result["fit"]))


if __name__ == "__main__":
  main()

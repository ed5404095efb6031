"""The GPipe bubble, measured: step time of the pipeline against micro-batch count, next to the
formula (S - 1) / (M + S - 1).

  python experiments/bench/pipeline_bubble.py --json OUT.json [--stages 2]

Two measurements per M:
- direct: every stage's work on the M micro-batches with no schedule around it (each device
  loops over its M micro-batches at once, under the same mesh and threads) takes B(M), the
  time a stage is busy in the pipeline's step time T(M); the bubble is 1 - B(M) / T(M).
- fit: the schedule takes M + S - 1 ticks, so T(M) = a * M + b; b / a is the bubble in ticks,
  to set against S - 1.
It needs S workers that really run at once: GPUs, TPU chips, or fake CPU devices with one
core each (S <= cores, single-threaded Eigen, as set below). More stages than cores
time-share the cores and measure the scheduler, not the schedule.
"""

import os
import sys

STAGES = int(sys.argv[sys.argv.index("--stages") + 1]) if "--stages" in sys.argv else 2
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={STAGES} "
                      "--xla_cpu_multi_thread_eigen=false")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from llm.io import write_json_atomic  # noqa: E402
from llm.parallel.pipeline import bubble_fraction, gpipe  # noqa: E402


def stage_fn(weights, x, extras):
  del extras
  for i in range(weights.shape[0]):
    x = jnp.tanh(x @ weights[i])
  return x


def in_mesh(mesh, fn):
  def call(*args):
    with jax.set_mesh(mesh):
      return fn(*args)
  return call


def interleaved_fastest(fns: dict, repeats: int) -> dict:
  """Best-of-N seconds per entry, timing the entries in turn so machine noise hits all alike."""
  for fn, args in fns.values():
    fn(*args).block_until_ready()
  best = {k: float("inf") for k in fns}
  for _ in range(repeats):
    for k, (fn, args) in fns.items():
      start = time.perf_counter()
      fn(*args).block_until_ready()
      best[k] = min(best[k], time.perf_counter() - start)
  return best


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
  if s > (os.cpu_count() or 1) and jax.default_backend() == "cpu":
    print(f"warning: {s} stages on {os.cpu_count()} cores time-share; the figures are not a "
          "bubble measurement", flush=True)
  counts = [int(v) for v in args.microbatches.split(",")]
  placed = jax.device_put(weights, NamedSharding(mesh, P("stage")))
  busy = jax.jit(jax.shard_map(
      lambda w, x: jax.lax.map(lambda xb: stage_fn(w[0], xb, None), x),
      mesh=mesh, in_specs=(P("stage"), P()), out_specs=P("stage")))
  fns = {}
  for m in counts:
    xs = jnp.ones((m,) + batch.shape, jnp.float32)
    fns[m] = (in_mesh(mesh, jax.jit(lambda w, x, m=m: gpipe(
        stage_fn, w, x, (jnp.zeros((m, 1)),), s))), (placed, xs))
    fns[("busy", m)] = (in_mesh(mesh, busy), (placed, xs))
  best = interleaved_fastest(fns, args.repeats)
  tick = best[("busy", counts[-1])] / counts[-1]
  runs = [{"microbatches": m, "seconds": best[m], "busy_seconds": best[("busy", m)],
           "formula": bubble_fraction(s, m), "measured_bubble": 1 - best[("busy", m)] / best[m],
           "ticks_taken": best[m] / tick, "ticks_in_schedule": m + s - 1} for m in counts]
  slope, intercept = np.polyfit(np.array(counts, float), [best[m] for m in counts], 1)
  for r in runs:
    r["fit_bubble"] = intercept / (slope * r["microbatches"] + intercept)
    print(r, flush=True)
  result = {"stages": s, "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
            "width": d, "repeats": args.repeats, "tick_seconds": tick,
            "fit": {"seconds_per_microbatch": slope, "intercept_seconds": intercept,
                    "intercept_in_ticks": intercept / slope}, "runs": runs}
  write_json_atomic(args.json, result, indent=2)
  print(json.dumps(result["fit"]))


if __name__ == "__main__":
  main()

"""The full training loop on a GPU: `small` through `python -m llm.main`, stopped and resumed.

  python experiments/bench/gpu_loop.py --json experiments/bench/results/gpu_loop_h200.json

Runs, in a fresh workdir,

  python -m llm.main --config=experiments/configs/small.py --config.train.batch_size=32
      --config.model.attention_impl=cudnn --config.train.steps=600

then the same command with --config.train.steps=700 on that workdir, which resumes from the
step-600 checkpoint. From the workdir's metrics.jsonl and peak_flops.json it writes: the median
tokens/s, MFU (against the bf16 matmul peak the loop measured at start) and step time over
steps 2..600 (step 1 includes compilation), the loss at steps 1, 300, 600 and 700, the
held-out perplexity at 600, the number of metric records, the step the second run resumed
from (its log) and whether the first run's records were kept (a restart from step 0 would
rewrite them), both commands, and the GPU, the library versions and the commit.

The loop's step time is the gap between one step's metrics arriving and the next's, with the
host preparing the next batch while the device runs (unlike gpu_check.py, which waits on each
step of a bare train step). It refuses to run without a GPU unless --allow_cpu is given (a
short smoke run, e.g. --config=experiments/configs/tiny.py --attention=xla --steps=4
--resume_steps=6 --override=--config.optim.warmup_steps=2).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parents[1]
sys.path.insert(0, str(BENCH))

from versions import library_versions, machine  # noqa: E402

# Prints the JAX backend and devices as JSON, in a child process, so this process never holds
# the GPU (JAX reserves most of its memory) while the training runs use it.
PROBE = """
import json, jax
d = jax.devices()
print(json.dumps({"backend": jax.default_backend(), "device_count": len(d),
                  "devices": [str(x) for x in d], "device_kind": d[0].device_kind,
                  "platform_version": getattr(d[0].client, "platform_version", None)}))
"""
RESUMED = re.compile(r"resumed from the checkpoint at step (\d+)")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True, help="where to write the results")
  p.add_argument("--config", default="experiments/configs/small.py")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--attention", default="cudnn", help="model.attention_impl")
  p.add_argument("--steps", type=int, default=600, help="steps of the first run")
  p.add_argument("--resume_steps", type=int, default=700,
                 help="config.train.steps of the second run, resumed on the same workdir")
  p.add_argument("--override", action="append", default=[],
                 help="further --config.X=Y flags for both runs (repeatable)")
  p.add_argument("--workdir", default=None,
                 help="default: a temporary folder, removed after a successful run")
  p.add_argument("--allow_cpu", action="store_true", help="run without a GPU (smoke check)")
  return p.parse_args(argv)


def probe_devices() -> dict:
  out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       cwd=REPO, check=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def command(args, workdir: str, steps: int) -> list[str]:
  return [sys.executable, "-m", "llm.main", f"--config={args.config}",
          f"--config.train.batch_size={args.batch}",
          f"--config.model.attention_impl={args.attention}", f"--config.train.steps={steps}",
          *args.override, f"--workdir={workdir}"]


def run(cmd: list[str], log_path: str) -> tuple[float, str]:
  """Runs `cmd` from the repository root, its output teed to `log_path`; (seconds, output)."""
  started = time.perf_counter()
  with open(log_path, "w", encoding="utf-8") as log:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    for line in proc.stdout:
      sys.stdout.write(line)
      log.write(line)
      lines.append(line)
    if proc.wait() != 0:
      raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}; "
                       f"log in {log_path}")
  return time.perf_counter() - started, "".join(lines)


def read_metrics(workdir: str) -> tuple[dict[int, dict], int]:
  """({step: record}, number of records) from metrics.jsonl; a resumed run replaces the
  records after its checkpoint."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f if line.strip()]
  return {int(r["step"]): r for r in records}, len(records)


def summarise(metrics: dict[int, dict], first_steps: int, resume_steps: int) -> dict:
  timed = [metrics[s] for s in range(2, first_steps + 1) if s in metrics]
  if not timed:
    raise SystemExit(f"no metric records for steps 2..{first_steps}")
  loss_steps = sorted({1, first_steps // 2, first_steps, resume_steps})
  return {
      f"median_tokens_per_second_steps_2_{first_steps}":
          statistics.median(r["tokens_per_second"] for r in timed),
      "median_mfu_vs_loop_measured_peak": statistics.median(r["mfu"] for r in timed),
      "median_step_seconds": statistics.median(r["step_seconds"] for r in timed),
      "timed_records": len(timed),
      "loss_at_steps": {str(s): metrics[s]["loss"] for s in loss_steps if s in metrics},
      f"eval_perplexity_at_{first_steps}": metrics.get(first_steps, {}).get("eval_perplexity"),
      f"eval_perplexity_at_{resume_steps}": metrics.get(resume_steps, {}).get("eval_perplexity"),
  }


def main(argv=None):
  args = parse_args(argv)
  devices = probe_devices()
  if devices["backend"] != "gpu" and not args.allow_cpu:
    raise SystemExit(f"no GPU (JAX backend {devices['backend']}); --allow_cpu for a smoke run")
  workdir = args.workdir or tempfile.mkdtemp(prefix="gpu_loop_")
  first, second = command(args, workdir, args.steps), command(args, workdir, args.resume_steps)
  result = {"devices": devices, "versions": library_versions(), "machine": machine(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                     text=True).stdout.strip() or None,
            "commands": [" ".join(["python", *c[1:]]) for c in (first, second)]}
  first_seconds, _ = run(first, os.path.join(workdir, "run1.log"))  # a failure keeps workdir
  with open(os.path.join(workdir, "peak_flops.json"), encoding="utf-8") as f:
    peak = json.load(f)  # the peak the first run's MFU figures are relative to
  first_metrics, _ = read_metrics(workdir)
  second_seconds, output = run(second, os.path.join(workdir, "run2.log"))
  resumed = RESUMED.findall(output)
  metrics, records = read_metrics(workdir)
  if args.workdir is None:
    shutil.rmtree(workdir, ignore_errors=True)
  result.update({
      "loop_measured_peak_flops": peak["peak_flops"], "peak_dtype": peak["dtype"],
      "resumed_from_step": int(resumed[-1]) if resumed else None,
      # a resumed run keeps the first run's records (timings included); a restart rewrites them
      "first_run_records_kept": all(metrics.get(s) == r for s, r in first_metrics.items()),
      "wall_seconds": [first_seconds, second_seconds],
      **summarise(metrics, args.steps, args.resume_steps),
      "metrics_records": records,
  })
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  sys.path.insert(0, str(REPO))
  from llm.io import write_json_atomic
  write_json_atomic(args.json, result, indent=2)
  print(json.dumps({k: v for k, v in result.items() if k not in ("versions", "machine")},
                   indent=2))
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

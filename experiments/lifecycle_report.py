"""Runs the main job (`python -m llm.lifecycle`, default flags unless given) in a fresh workdir
and records its report, with the wall time, the commit and the machine, as the results file
the README quotes.

  python experiments/lifecycle_report.py [--json=experiments/results/lifecycle_cpu.json]
      [-- LIFECYCLE_FLAGS ...]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from experiments.bench.versions import library_versions  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402


def commit() -> str:
  done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
  return done.stdout.strip()


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--json", default=os.path.join(ROOT, "experiments", "results",
                                                     "lifecycle_cpu.json"))
  parser.add_argument("flags", nargs="*", help="flags for llm.lifecycle (after --)")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, "-m", "llm.lifecycle", f"--workdir={workdir}",
               "--config.train.progress=false", *args.flags]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
      raise SystemExit(f"the main job failed:\n{done.stderr[-4000:]}")
    with open(os.path.join(workdir, "report.json"), encoding="utf-8") as f:
      report = json.load(f)
  write_json_atomic(args.json, {
      "command": " ".join(["python", "-m", "llm.lifecycle", *args.flags]),
      "wall_seconds": round(seconds, 1), "cpu_count": os.cpu_count(), "commit": commit(),
      "versions": library_versions(), "report": report}, indent=2, ensure_ascii=False)
  print(f"{args.json}: {seconds:.0f} s; stages {report['stage_seconds']}")


if __name__ == "__main__":
  main()

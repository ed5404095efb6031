"""Every recovery scenario of the training loop, on the `tiny` model and the packaged text.

  python experiments/fault_injection.py --workdir runs/faults --json OUT.json

- kill:     10 runs, each SIGKILLed twice at random moments (start-up, mid-step, during an
            asynchronous save; checkpoints every 4 steps) and restarted; each must finish with
            the loss curve of the uninterrupted run, bitwise.
- nan:      5 runs with a non-finite loss injected at a random batch: rollback, skip, finish.
- spike:    5 runs with the loss of a random batch multiplied by 10: the same.
- float16:  float16 with dynamic loss scaling against float32: final loss within 2%.
- corrupt:  the latest checkpoint garbled: the previous one is restored, with a warning that
            names the damaged path.
Prints a table and writes the details as JSON.
"""

import argparse
import json
import logging
import os
import random
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import numpy as np  # noqa: E402

from llm.config import load_experiment  # noqa: E402
from llm.data.prepare import prepare_lm_data  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.train.faults import FaultyTask, run_with_kills  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402


def tiny(steps: int, data_dir: str):
  config = load_experiment("tiny")
  config.train.steps, config.train.progress, config.train.eval_every = steps, False, 0
  config.checkpoint.every_steps, config.checkpoint.every_minutes = 4, 1e6
  config.optim.warmup_steps = min(config.optim.warmup_steps, steps)
  _, rows, _ = prepare_lm_data(config.data, data_dir)
  return config, rows


def curve(workdir: str) -> dict:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f if line.strip()]
  return {"steps": [r["step"] for r in records], "loss": [r["loss"] for r in records]}


def events(workdir: str) -> list:
  path = os.path.join(workdir, "events.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


def kill_scenario(args, data_dir) -> dict:
  steps = args.kill_steps
  child = [sys.executable, os.path.abspath(__file__), "--child", "--data", data_dir,
           "--steps", str(steps)]
  reference = os.path.join(args.workdir, "kill_reference")
  run_with_kills(child + ["--workdir", reference], os.path.join(reference, "metrics.jsonl"), 0)
  want = curve(reference)
  runs = []
  for i in range(args.kill_runs):
    workdir = os.path.join(args.workdir, f"kill_{i}")
    killed = run_with_kills(child + ["--workdir", workdir], os.path.join(workdir, "metrics.jsonl"),
                            kills=2, seed=i, max_new_steps=steps // 2)
    got = curve(workdir)
    runs.append({"killed_after_steps": killed, "identical": got == want})
    print(f"kill run {i}: killed after {killed} logged steps, identical={got == want}", flush=True)
  return {"runs": runs, "passed": sum(r["identical"] for r in runs)}


def injection_scenario(args, data_dir, fault) -> dict:
  runs, rng = [], random.Random(str(fault))
  for i in range(args.injection_runs):
    config, rows = tiny(args.injection_steps, data_dir)
    batch = rng.randint(config.stability.min_history + 2, args.injection_steps - 10)
    workdir = os.path.join(args.workdir, f"{'nan' if fault == 'nan' else 'spike'}_{i}")
    result = train(config, FaultyTask(LMTask(config, rows), {batch: fault}), workdir)
    log = events(workdir)
    finished = result["history"] and result["history"][-1]["step"] == args.injection_steps
    rolled_back = any(e["action"] == "rollback" for e in log)
    runs.append({"faulty_batch": batch, "events": log, "finished": bool(finished),
                 "final_loss": result["history"][-1]["loss"]})
    print(f"{fault} run {i}: batch {batch}, events {[(e['kind'], e['action']) for e in log]}, "
          f"finished={finished}", flush=True)
    runs[-1]["passed"] = bool(finished and rolled_back)
  return {"runs": runs, "passed": sum(r["passed"] for r in runs)}


def float16_scenario(args, data_dir) -> dict:
  finals = {}
  for dtype in ("float32", "float16"):
    config, rows = tiny(args.float16_steps, data_dir)
    config.model.compute_dtype = dtype
    result = train(config, LMTask(config, rows), os.path.join(args.workdir, dtype))
    history = result["history"]
    finals[dtype] = {"final_loss": float(np.mean([h["loss"] for h in history[-10:]])),
                     "skipped_steps": int(sum(h.get("nonfinite", 0) for h in history))}
  gap = abs(finals["float16"]["final_loss"] / finals["float32"]["final_loss"] - 1)
  print(f"float16 vs float32: {finals}, relative gap {gap:.4%}", flush=True)
  return dict(finals, relative_gap=gap, passed=int(gap <= 0.02))


def corrupt_scenario(args, data_dir) -> dict:
  config, rows = tiny(12, data_dir)
  workdir = os.path.join(args.workdir, "corrupt")
  train(config, LMTask(config, rows), workdir)
  latest = os.path.join(workdir, "checkpoints", "12", "state")
  for root, _, files in os.walk(latest):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\0" * 7)
  config.train.steps = 16
  messages = []
  handler = logging.Handler()
  handler.emit = lambda record: messages.append(record.getMessage())
  logging.getLogger().addHandler(handler)
  try:
    result = train(config, LMTask(config, rows), workdir)
  finally:
    logging.getLogger().removeHandler(handler)
  named = any(os.path.dirname(latest) in m for m in messages)
  resumed_from = result["history"][0]["step"] - 1
  print(f"corrupt: warning names the path={named}, resumed from step {resumed_from}", flush=True)
  return {"warning_names_path": named, "resumed_from": resumed_from,
          "passed": int(named and resumed_from == 8)}


def child(args) -> None:
  config, rows = tiny(args.steps, args.data)
  train(config, LMTask(config, rows), args.workdir)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/faults")
  parser.add_argument("--json")
  parser.add_argument("--kill_runs", type=int, default=10)
  parser.add_argument("--kill_steps", type=int, default=40)
  parser.add_argument("--injection_runs", type=int, default=5)
  parser.add_argument("--injection_steps", type=int, default=60)
  parser.add_argument("--float16_steps", type=int, default=300)
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--data", help=argparse.SUPPRESS)
  parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    return child(args)
  logging.basicConfig(level=logging.WARNING)
  data_dir = os.path.join(args.workdir, "data")
  tiny(1, data_dir)  # prepares the data once
  results = {"kill": kill_scenario(args, data_dir),
             "nan": injection_scenario(args, data_dir, "nan"),
             "spike": injection_scenario(args, data_dir, 10.0),
             "float16": float16_scenario(args, data_dir),
             "corrupt": corrupt_scenario(args, data_dir)}
  totals = {"kill": args.kill_runs, "nan": args.injection_runs, "spike": args.injection_runs,
            "float16": 1, "corrupt": 1}
  print("\n| scenario | passed |\n|---|---|")
  for name, r in results.items():
    print(f"| {name} | {r['passed']} of {totals[name]} |")
  if args.json:
    write_json_atomic(args.json, results, indent=2)


if __name__ == "__main__":
  main()

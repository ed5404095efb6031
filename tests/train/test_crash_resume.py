"""SIGKILL at random moments (start-up, mid-step, mid asynchronous save): every restart resumes
model, optimizer, data position and RNG exactly, so the loss curve equals an uninterrupted run."""

import json
import os
import sys

from llm.train.faults import run_with_kills

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 24


def _losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f if line.strip()]
  return {r["step"]: r["loss"] for r in records}, [r["step"] for r in records]


def test_killed_runs_resume_to_the_uninterrupted_curve(tmp_path):
  command = [sys.executable, os.path.join(HERE, "crash_child.py")]
  straight, crashed = str(tmp_path / "straight"), str(tmp_path / "crashed")
  run_with_kills(command + [straight, str(STEPS)], os.path.join(straight, "metrics.jsonl"), 0)
  kills = run_with_kills(command + [crashed, str(STEPS)], os.path.join(crashed, "metrics.jsonl"),
                         kills=3, seed=1, max_new_steps=6)
  assert len(kills) == 3
  want, _ = _losses(straight)
  got, order = _losses(crashed)
  assert order == list(range(1, STEPS + 1))  # one record per step, no gap, no repeat
  assert got == want  # bitwise: the same floats

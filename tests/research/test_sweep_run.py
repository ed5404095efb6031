"""A 4-point sweep of `tiny` for a few steps: killed part-way, continued by running the same
command again, and its table agrees with what each run reported itself."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT

STEPS = 6
COMMAND = [sys.executable, "-m", "llm.sweep", "--config=experiments/configs/tiny.py",
           "--sweep=optim.lr=1e-3,3e-3 train.batch_size=4,8", "--parallel=2", "--",
           f"--config.train.steps={STEPS}", "--config.train.eval_every=3",
           "--config.optim.warmup_steps=2", "--config.data.max_chars=300000",
           "--config.data.heldout_fraction=0.05", "--config.data.pack_workers=1",
           "--config.train.progress=False"]


def _reports(sweep_dir) -> dict:
  found = {}
  for name in sorted(os.listdir(sweep_dir) if os.path.isdir(sweep_dir) else []):
    path = os.path.join(sweep_dir, name, "report.json")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        found[name] = json.load(f)
  return found


def test_sweep_is_killed_resumed_and_tabulated(tmp_path):
  sweep_dir = str(tmp_path / "sweep")
  command = [*COMMAND[:3], f"--sweep_dir={sweep_dir}", *COMMAND[3:]]
  first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           start_new_session=True)
  deadline = time.time() + 600
  while not _reports(sweep_dir) and first.poll() is None and time.time() < deadline:
    time.sleep(0.5)
  os.killpg(first.pid, signal.SIGKILL)  # the sweep and every run it started
  first.wait()
  done_before = set(_reports(sweep_dir))
  assert 1 <= len(done_before) < 4, first.stderr.read().decode()[-3000:]

  second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert second.returncode == 0, second.stderr[-3000:]
  assert f"{len(done_before)} already done, {4 - len(done_before)} to run" in second.stderr
  reports = _reports(sweep_dir)
  assert len(reports) == 4
  with open(os.path.join(sweep_dir, "sweep.csv"), encoding="utf-8") as f:
    rows = {row["point"]: row for row in csv.DictReader(f)}
  assert set(rows) == set(reports)
  for name, report in reports.items():
    row = rows[name]
    assert row["status"] == "done" and int(row["steps"]) == STEPS
    assert float(row["final_loss"]) == report["final_loss"]
    assert float(row["final_eval_loss"]) == report["eval"]["eval_loss"]
    with open(os.path.join(sweep_dir, name, "metrics.jsonl"), encoding="utf-8") as f:
      steps = [json.loads(line)["step"] for line in f]
    assert steps == list(range(1, STEPS + 1))  # a killed run left no duplicate or gap
  best = min(reports, key=lambda n: reports[n]["eval"]["eval_loss"])
  assert [n for n, row in rows.items() if row["best"] == "1"] == [best]
  with open(os.path.join(sweep_dir, "sweep.md"), encoding="utf-8") as f:
    assert f"**{best}**" in f.read()
  assert os.path.getsize(os.path.join(sweep_dir, "sweep.png")) > 10_000

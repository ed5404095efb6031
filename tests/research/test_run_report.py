"""Run reports read back what the loop wrote: final and best values, incidents, config diffs."""

import json
import subprocess
import sys

import numpy as np

from llm.research.run_files import read_jsonl, summarize
from llm.research.run_report import run_names, write_report
from tests.conftest import ROOT


def _fake_run(folder, lr: float, steps: int = 40, moe: bool = False, spike_at: int = 0):
  """A workdir as the loop leaves it: metrics each step, eval every 10, config, events."""
  folder.mkdir(parents=True)
  rng = np.random.default_rng(int(lr * 1e4))
  records = []
  for step in range(1, steps + 1):
    record = {"step": step, "loss": 5.0 / step ** 0.3 + 0.01 * rng.standard_normal(),
              "learning_rate": lr, "grad_norm": 1.0 + rng.random(), "tokens_per_second": 1e4,
              "mfu": 0.3}
    if step % 10 == 0:
      record["eval_loss"] = record["loss"] + 0.1
    if moe:
      record.update({f"moe/load_{e:02d}": 0.25 for e in range(4)})
    records.append(record)
  text = "".join(json.dumps(r) + "\n" for r in records)
  (folder / "metrics.jsonl").write_text(text + '{"step": 41, "lo')  # a torn last line
  if spike_at:
    (folder / "events.jsonl").write_text(json.dumps(
        {"step": spike_at, "kind": "spike", "loss": 9.0, "detail": "z=7", "action": "rollback"})
        + "\n")
  (folder / "config.json").write_text(json.dumps(
      {"optim": {"lr": lr, "b1": 0.9}, "train": {"steps": steps}}))
  return records


def test_summary_is_the_last_and_the_lowest_values(tmp_path):
  records = _fake_run(tmp_path / "a", 1e-3, spike_at=12)
  summary = summarize(str(tmp_path / "a"))
  assert len(read_jsonl(str(tmp_path / "a" / "metrics.jsonl"))) == 40
  assert summary["status"] == "done" and summary["steps"] == 40 and summary["incidents"] == 1
  assert summary["final"]["loss"] == records[-1]["loss"]
  assert summary["final"]["eval_loss"] == records[39]["eval_loss"]
  assert summary["best"]["loss"] == min(r["loss"] for r in records)
  assert summary["best"]["eval_loss"] == min(r["eval_loss"] for r in records if "eval_loss" in r)


def test_several_runs_are_overlaid_with_their_differences(tmp_path):
  _fake_run(tmp_path / "x" / "run", 1e-3, spike_at=12)
  _fake_run(tmp_path / "y" / "run", 3e-3, moe=True)
  path = write_report([str(tmp_path / "x" / "run"), str(tmp_path / "y" / "run")],
                      str(tmp_path / "out"))
  page = open(path, encoding="utf-8").read()
  assert "| x/run | done | 40 | 1 |" in page and "| y/run | done | 40 | 0 |" in page
  assert "| optim.lr | 0.001 | 0.003 |" in page and "optim.b1 |" not in page.split("<details>")[0]
  assert "x/run, step 12: spike (z=7); action: rollback" in page
  assert "MoE expert load" in page and "![" in page
  assert (tmp_path / "out" / "curves.png").stat().st_size > 20_000


def test_names_grow_until_they_differ():
  assert run_names(["/r/a/pretrain", "/r/b/pretrain"]) == ["a/pretrain", "b/pretrain"]
  assert run_names(["/r/dpo", "/r/ppo"]) == ["dpo", "ppo"]


def test_cli_names_a_folder_without_a_run(tmp_path):
  done = subprocess.run([sys.executable, "-m", "llm.report", str(tmp_path)], cwd=ROOT,
                        capture_output=True, text=True)
  assert done.returncode != 0 and "has no metrics.jsonl records" in done.stderr


def test_cli_writes_beside_a_single_run(tmp_path):
  _fake_run(tmp_path / "run", 1e-3)
  done = subprocess.run([sys.executable, "-m", "llm.report", str(tmp_path / "run")], cwd=ROOT,
                        capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  assert (tmp_path / "run" / "report" / "report.md").exists()

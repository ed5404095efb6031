"""Runs a sweep's points on this machine, `parallel` at a time, each as its own `llm.main`
process whose output goes to `<workdir>/run.log`. Done points are skipped, and a point whose
data config matches a point that already prepared its data starts from a hard-linked copy of
that data (tokenizer and packed rows) instead of building it again."""

import json
import logging
import os
import shutil
import subprocess
import time

from llm.research.sweep_plan import Plan


def _link_or_copy(source: str, target: str) -> None:
  try:
    os.link(source, target)
  except OSError:  # another file system
    shutil.copy2(source, target)


def reuse_data(plan: Plan, point, data_config: dict | None) -> str | None:
  """Seeds the point's data folder from a point prepared with the same data config; returns
  the folder it came from (None if the point has data already or nothing matches)."""
  target = os.path.join(plan.workdir(point), "data")
  if data_config is None or os.path.exists(target):
    return None
  for other in plan.points:
    folder = os.path.join(plan.workdir(other), "data")
    manifest = os.path.join(folder, "manifest.json")
    if other == point or not os.path.exists(manifest):
      continue
    with open(manifest, encoding="utf-8") as f:
      if json.load(f) == data_config:
        shutil.copytree(folder, target + ".tmp", copy_function=_link_or_copy,
                        dirs_exist_ok=True)
        os.replace(target + ".tmp", target)
        return folder
  return None


def _start(plan: Plan, point, env: dict) -> tuple[subprocess.Popen, object, float]:
  workdir = plan.workdir(point)
  os.makedirs(workdir, exist_ok=True)
  log = open(os.path.join(workdir, "run.log"), "a", encoding="utf-8")
  process = subprocess.Popen(plan.command(point), stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, **env})
  return process, log, time.perf_counter()


def run_local(plan: Plan, parallel: int = 1, env: dict | None = None,
              poll_seconds: float = 0.5, data_configs: dict | None = None) -> dict[str, int]:
  """Runs every point not yet done; returns {point name: exit code} of those it ran.
  `data_configs` ({point name: its data config as JSON}) enables reusing prepared data."""
  todo = [p for p in plan.points if not plan.done(p)]
  skipped = len(plan.points) - len(todo)
  logging.info("sweep %s: %d points, %d already done, %d to run, %d at a time",
               plan.sweep_dir, len(plan.points), skipped, len(todo), parallel)
  running, codes = {}, {}
  try:
    _drive(plan, todo, running, codes, skipped, parallel, env or {}, poll_seconds,
           data_configs or {})
  finally:  # interrupted: stop the runs; each resumes from its checkpoints next time
    for process, log, _ in running.values():
      process.terminate()
      process.wait()
      log.close()
  return codes


def _drive(plan, todo, running, codes, skipped, parallel, env, poll_seconds,
           data_configs) -> None:
  while todo or running:
    while todo and len(running) < max(1, parallel):
      point = todo.pop(0)
      source = reuse_data(plan, point, data_configs.get(point.name))
      if source:
        logging.info("%s: data from %s", point.name, source)
      running[point.name] = _start(plan, point, env)
      logging.info("started %s", point.name)
    time.sleep(poll_seconds)
    for name, (process, log, started) in list(running.items()):
      if process.poll() is None:
        continue
      log.close()
      codes[name] = process.returncode
      del running[name]
      state = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode})"
      logging.info("[%d/%d] %s %s in %.0fs; log: %s", skipped + len(codes), len(plan.points),
                   name, state, time.perf_counter() - started,
                   os.path.join(plan.sweep_dir, name, "run.log"))

"""A sweep handed to a launcher: the local runner, or a file for Slurm, GKE or a TPU VM pod
written into the sweep folder (and submitted unless it is a dry run)."""

import json
import logging
import os
import shlex
import subprocess

from llm.io import write_text_atomic
from llm.research import launchers
from llm.research.sweep_local import run_local
from llm.research.sweep_plan import Plan

LAUNCHERS = ("local", "slurm", "gke", "tpu_vm")


def describe(plan: Plan) -> str:
  """The command line of every point, marked done or to run (what a dry run prints)."""
  lines = []
  for point in plan.points:
    state = "done  " if plan.done(point) else "to run"
    lines.append(f"[{state}] {point.name}: {shlex.join(plan.command(point))}")
  return "\n".join(lines)


def _remote_runs(plan: Plan, remote_workdir: str) -> list[list[str]]:
  return [plan.main_args(p, remote_workdir) for p in plan.points]


def job_file(plan: Plan, launcher: str, options) -> tuple[str, str, list[str]]:
  """(file name, text, submit command) of a cluster launcher's job for the whole sweep."""
  runs = _remote_runs(plan, options.remote_workdir)
  name = options.name or launchers.dns_label(os.path.basename(os.path.abspath(plan.sweep_dir)),
                                             limit=36)
  if launcher == "slurm":
    text = launchers.slurm_array(name, runs, nodes=options.hosts,
                                 tasks_per_node=options.per_host or 8,
                                 parallel=options.parallel, log_dir=plan.sweep_dir)
    return "slurm_array.sh", text, ["sbatch"]
  if launcher == "gke":
    if not options.image:
      raise ValueError("--launcher=gke needs --image=REGISTRY/llm:TAG (the container to run)")
    gpu = options.accelerator == "gpu"
    accelerator = launchers.Accelerator(
        kind=options.accelerator, type=options.gpu_type if gpu else options.tpu_type,
        topology=options.tpu_topology, per_host=options.per_host or (8 if gpu else 4))
    manifest = launchers.jobset_list(name, options.image, options.hosts, accelerator, runs)
    return "jobset.json", json.dumps(manifest, indent=2), ["kubectl", "apply", "-f"]
  if launcher == "tpu_vm":
    return "tpu_vm_sweep.sh", launchers.tpu_vm_script(runs), ["bash"]
  raise ValueError(f"unknown launcher {launcher!r}: one of {', '.join(LAUNCHERS)}")


def launch(plan: Plan, launcher: str, options, dry_run: bool = False) -> int:
  """Runs the sweep here, or writes (and unless `dry_run` submits) its cluster job."""
  if launcher == "local":
    if dry_run:
      print(describe(plan))
      return 0
    codes = run_local(plan, options.parallel, data_configs=options.data_configs)
    failed = sorted(name for name, code in codes.items() if code)
    if failed:
      logging.error("%d point(s) failed: %s (see their run.log)", len(failed), ", ".join(failed))
    return 1 if failed else 0
  name, text, submit = job_file(plan, launcher, options)
  path = os.path.join(plan.sweep_dir, name)
  write_text_atomic(path, text)
  if dry_run:
    print(text)
    logging.info("dry run: wrote %s; submit it with: %s", path, shlex.join([*submit, path]))
    return 0
  return subprocess.run([*submit, path]).returncode

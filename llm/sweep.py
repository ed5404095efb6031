"""Hyperparameter sweeps: a grid or seeded random search over config flags, each point an
`llm.main` run with its own workdir; run here N at a time or emitted for a cluster launcher.

  python -m llm.sweep --config=experiments/configs/tiny.py --sweep_dir=runs/lr_sweep \\
      --sweep='optim.lr=1e-3,3e-3,1e-2 model.num_layers=2,4' --parallel=2 \\
      -- --config.train.steps=300
  python -m llm.sweep ... --search=random --points=8 --sweep='optim.lr=loguniform:1e-4:1e-2'
  python -m llm.sweep ... --launcher=gke --image=REGISTRY/llm:TAG --accelerator=gpu --dry_run

Flags after `--` go to every point. Running the same command again continues the sweep (done
points are skipped, killed ones resume from their checkpoints). At the end, and with
--collect_only at any time, SWEEP_DIR gets sweep.csv, sweep.md (best point marked) and
sweep.png (the metric against each swept field).
"""

import logging
import signal
import sys
import types

from absl import app, flags

from llm.align.registry import check_run_config
from llm.research.sweep_jobs import LAUNCHERS, launch
from llm.research.sweep_plan import Plan, check_points, save_or_check
from llm.research.sweep_spec import expand, load_sweep_file, parse_sweep
from llm.research.sweep_table import write_results
from llm.runtime import configure_logging

_CONFIG = flags.DEFINE_string("config", None, "The experiment config every point starts from.")
_SWEEP = flags.DEFINE_string("sweep", "", "'FIELD=V1,V2 FIELD=...' (values as in --config.FIELD=)")
_SWEEP_FILE = flags.DEFINE_string("sweep_file", "", "A .py file whose get_sweep() gives the sweep.")
_SEARCH = flags.DEFINE_enum("search", "grid", ["grid", "random"], "Grid, or seeded random draws.")
_POINTS = flags.DEFINE_integer("points", 0, "Random search: how many points.")
_SEED = flags.DEFINE_integer("seed", 0, "Random search: the seed of the draws.")
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Folder of the sweep and its points' workdirs.")
_LAUNCHER = flags.DEFINE_enum("launcher", "local", list(LAUNCHERS), "Where the points run.")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Points at a time (local; Slurm's array limit).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Show what would run (and write the job file).")
_COLLECT_ONLY = flags.DEFINE_bool("collect_only", False, "Only write the results tables.")
_METRIC = flags.DEFINE_string("metric", "eval_loss", "Final metric that ranks the points.")
_GOAL = flags.DEFINE_enum("goal", "min", ["min", "max"], "Whether lower or higher is better.")
_NAME = flags.DEFINE_string("name", "", "Cluster job name (default: from --sweep_dir).")
_REMOTE_WORKDIR = flags.DEFINE_string("remote_workdir", "", "Cluster: workdir root, e.g. gs://b/x.")
_HOSTS = flags.DEFINE_integer("hosts", 1, "Cluster: hosts (Slurm nodes, GKE pods) per point.")
_PER_HOST = flags.DEFINE_integer("per_host", 0, "Cluster: GPUs or TPU chips per host.")
_IMAGE = flags.DEFINE_string("image", "", "GKE: the container image.")
_ACCELERATOR = flags.DEFINE_enum("accelerator", "tpu", ["tpu", "gpu"], "GKE: node pool kind.")
_TPU_TYPE = flags.DEFINE_string("tpu_type", "tpu-v5p-slice", "GKE: TPU accelerator label.")
_TPU_TOPOLOGY = flags.DEFINE_string("tpu_topology", "2x2x1", "GKE: TPU slice topology.")
_GPU_TYPE = flags.DEFINE_string("gpu_type", "nvidia-h100-80gb", "GKE: GPU accelerator label.")


def main(argv):
  configure_logging()
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the points' runs too
  try:
    fields = load_sweep_file(_SWEEP_FILE.value) if _SWEEP_FILE.value else parse_sweep(_SWEEP.value)
    points = expand(fields, _SEARCH.value, _POINTS.value, _SEED.value)
    plan = Plan(_SWEEP_DIR.value, _CONFIG.value, tuple(argv[1:]), tuple(points))
    if not _COLLECT_ONLY.value:
      data_configs = check_points(plan, check_run_config)
      if not _DRY_RUN.value:
        save_or_check(plan)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"sweep: {e}") from None
  code = 0
  if not _COLLECT_ONLY.value:
    code = launch(plan, _LAUNCHER.value, _options(data_configs), _DRY_RUN.value)
  if _COLLECT_ONLY.value or (_LAUNCHER.value == "local" and not _DRY_RUN.value):
    table = write_results(plan, _METRIC.value, _GOAL.value)
    logging.info("best point by final %s: %s; table: %s/sweep.md", _METRIC.value,
                 table["best"], plan.sweep_dir)
  return code


def _options(data_configs):
  """The launcher settings from the flags, as one object."""
  return types.SimpleNamespace(
      parallel=_PARALLEL.value, data_configs=data_configs, name=_NAME.value,
      remote_workdir=_REMOTE_WORKDIR.value, hosts=_HOSTS.value, per_host=_PER_HOST.value,
      image=_IMAGE.value, accelerator=_ACCELERATOR.value, tpu_type=_TPU_TYPE.value,
      tpu_topology=_TPU_TOPOLOGY.value, gpu_type=_GPU_TYPE.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "sweep_dir"])
  app.run(main)

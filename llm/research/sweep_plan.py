"""A sweep on disk: `SWEEP_DIR/sweep.json` records the points and their command lines, each point
trains in `SWEEP_DIR/<point name>`, and a point is done when its run wrote `report.json`.

Running the same sweep again continues it: done points are skipped, and a point that was killed
resumes from its own checkpoints (`llm.main` does that for any workdir). A different sweep in
the same folder is refused rather than mixed in.
"""

import dataclasses
import json
import os
import sys

from llm.io import write_json_atomic
from llm.research.sweep_spec import Point

PLAN_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything needed to run, emit or collect a sweep."""
  sweep_dir: str
  config: str                # the experiment config file every point starts from
  base_flags: tuple[str, ...]  # flags given to every point (after `--` on the sweep's line)
  points: tuple[Point, ...]

  def workdir(self, point: Point) -> str:
    return os.path.join(self.sweep_dir, point.name)

  def main_args(self, point: Point, workdir: str = "") -> list[str]:
    """The `llm.main` flags of one point (its workdir under `workdir` if given, e.g. gs://)."""
    root = workdir.rstrip("/") + "/" + point.name if workdir else self.workdir(point)
    return [f"--config={self.config}", *self.base_flags, *point.flags(), f"--workdir={root}"]

  def command(self, point: Point) -> list[str]:
    return [sys.executable, "-m", "llm.main", *self.main_args(point)]

  def done(self, point: Point) -> bool:
    return os.path.exists(os.path.join(self.workdir(point), "report.json"))

  def to_json(self) -> dict:
    return {"config": self.config, "base_flags": list(self.base_flags),
            "points": [{"index": p.index, "name": p.name, "overrides": dict(p.overrides)}
                       for p in self.points]}


def resolve_config(config_path: str, flags: list[str]):
  """The config one point's command line gives, parsed exactly as `llm.main` parses it."""
  from absl import flags as absl_flags
  from ml_collections import config_flags
  values = absl_flags.FlagValues()
  argv = ["llm.main", f"--config={config_path}", *flags]
  holder = config_flags.DEFINE_config_file("config", config_path, flag_values=values,
                                           lock_config=True, sys_argv=argv)
  try:
    values(argv)
  except (absl_flags.Error, AttributeError, KeyError) as e:
    while e.args and isinstance(e.args[0], BaseException):  # ml_collections wraps KeyErrors
      e = e.args[0]
    detail = " ".join(str(e.args[0] if e.args else e).split())
    raise ValueError(f"{detail} ({' '.join(flags)}). Fields are config paths such as optim.lr: "
                     f"see {config_path} and llm/config.py for the names") from None
  return holder.value


def check_points(plan: Plan, check) -> dict[str, dict]:
  """Every point's config parses and passes `check` before anything runs; returns each
  point's data config as `llm.data.prepare` records it (equal ones can share prepared data)."""
  data_configs = {}
  for point in plan.points:
    config = resolve_config(plan.config, [*plan.base_flags, *point.flags()])
    try:
      check(config)
    except Exception as e:  # noqa: BLE001 - re-raised with the point named
      raise ValueError(f"sweep point {point.name}: {e}") from None
    data_configs[point.name] = json.loads(config.data.to_json(sort_keys=True))
  return data_configs


def save_or_check(plan: Plan) -> None:
  """Writes sweep.json, or checks that the one already there describes this same sweep."""
  path = os.path.join(plan.sweep_dir, PLAN_FILE)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      existing = json.load(f)
    if existing != plan.to_json():
      raise ValueError(f"{plan.sweep_dir} holds a different sweep ({path}); continue it with "
                       "the same flags, or give a new --sweep_dir")
    return
  os.makedirs(plan.sweep_dir, exist_ok=True)
  write_json_atomic(path, plan.to_json(), indent=2)

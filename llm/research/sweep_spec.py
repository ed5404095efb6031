"""What a sweep is: config overrides written like the flags, expanded into points.

  --sweep='optim.lr=1e-3,3e-3,1e-2 model.num_layers=2,4'      grid: 6 points
  --sweep='optim.lr=loguniform:1e-4:1e-2 train.batch_size=8,16' --search=random --points=10

A value is the text that follows `--config.FIELD=` on a command line. Values holding commas
(tuples, dicts) go in a sweep file: a Python file whose `get_sweep()` returns either
{field: [values]} (expanded like --sweep) or a list of {field: value} points; non-string values
are written as Python literals, which is what ml_collections' flags parse.
"""

import dataclasses
import importlib.util
import itertools
import math
import pathlib
import re

import numpy as np

DISTRIBUTIONS = ("uniform", "loguniform", "randint")


@dataclasses.dataclass(frozen=True)
class Point:
  """One run of the sweep: its index, a readable name and its {field: flag text} overrides."""
  index: int
  overrides: tuple[tuple[str, str], ...]

  @property
  def name(self) -> str:
    parts = [f"{field.rsplit('.', 1)[-1]}={value}" for field, value in self.overrides]
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "_", ",".join(parts))[:80]
    return f"{self.index:03d}" + (f"-{slug}" if slug else "")

  def flags(self) -> list[str]:
    return [f"--config.{field}={value}" for field, value in self.overrides]


def flag_text(value) -> str:
  """A value as a user would type it after `--config.FIELD=`."""
  return value if isinstance(value, str) else repr(value)


def _field_name(field: str) -> str:
  field = field.strip().removeprefix("--").removeprefix("config.")
  if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", field):
    raise ValueError(f"sweep field {field!r} is not a dotted config path such as optim.lr")
  return field


def parse_sweep(text: str) -> dict[str, list[str]]:
  """'a.b=1,2 c=x' -> {"a.b": ["1", "2"], "c": ["x"]} (order kept, duplicates refused)."""
  fields = {}
  for token in text.split():
    field, sep, values = token.partition("=")
    if not sep or not values:
      raise ValueError(f"sweep entry {token!r} needs FIELD=V1,V2,... e.g. optim.lr=1e-3,3e-3")
    field = _field_name(field)
    if field in fields:
      raise ValueError(f"sweep field {field!r} is given twice; list all its values once")
    fields[field] = [v for v in values.split(",") if v != ""]
  if not fields:
    raise ValueError("the sweep is empty: give --sweep='FIELD=V1,V2 ...' or --sweep_file")
  return fields


def load_sweep_file(path: str):
  """get_sweep() of a Python sweep file: a {field: [values]} dict or a list of point dicts."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise FileNotFoundError(f"no sweep file at {path}: give a .py file defining get_sweep()")
  spec = importlib.util.spec_from_file_location(f"sweep_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep(): return {{field: [values]}} or a list "
                     "of {field: value} dicts")
  sweep = module.get_sweep()
  if isinstance(sweep, dict):
    return {_field_name(k): [flag_text(v) for v in values] for k, values in sweep.items()}
  return [{_field_name(k): flag_text(v) for k, v in point.items()} for point in sweep]


def _distribution(text: str):
  """('loguniform', 1e-4, 1e-2) for 'loguniform:1e-4:1e-2', else None."""
  kind, _, rest = text.partition(":")
  if kind not in DISTRIBUTIONS:
    return None
  try:
    low, high = (float(x) for x in rest.split(":"))
  except ValueError:
    raise ValueError(f"{text!r}: write {kind}:LOW:HIGH, e.g. loguniform:1e-4:1e-2") from None
  if not low < high or (kind == "loguniform" and low <= 0):
    raise ValueError(f"{text!r}: need LOW < HIGH (and LOW > 0 for loguniform)")
  return kind, low, high


def _sample(values: list[str], rng: np.random.Generator) -> str:
  if len(values) == 1 and (dist := _distribution(values[0])):
    kind, low, high = dist
    if kind == "randint":
      return str(int(rng.integers(math.ceil(low), math.floor(high) + 1)))
    if kind == "loguniform":
      return f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}"
    return f"{rng.uniform(low, high):.4g}"
  return values[int(rng.integers(len(values)))]


def expand(fields, search: str = "grid", points: int = 0, seed: int = 0) -> list[Point]:
  """The sweep's points: the full grid, or `points` seeded random draws (one per field)."""
  if isinstance(fields, list):  # explicit points from a sweep file
    return [Point(i, tuple(p.items())) for i, p in enumerate(fields)]
  names = list(fields)
  if search == "grid":
    for name in names:
      if any(_distribution(v) for v in fields[name]):
        raise ValueError(f"{name}: a distribution needs --search=random (a grid needs values)")
    combos = itertools.product(*(fields[n] for n in names))
    return [Point(i, tuple(zip(names, combo))) for i, combo in enumerate(combos)]
  if search == "random":
    if points <= 0:
      raise ValueError("--search=random needs --points=N (how many draws)")
    rng = np.random.default_rng(seed)
    return [Point(i, tuple((n, _sample(fields[n], rng)) for n in names))
            for i in range(points)]
  raise ValueError(f"unknown --search={search!r}: grid or random")

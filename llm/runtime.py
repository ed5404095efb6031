"""Process set-up shared by the command-line entry points."""

import logging
import os
import platform
import sys

from llm.config import ConfigError, validate


def configure_logging() -> None:
  """INFO for our own messages; orbax (via absl) logs every save step at INFO, so quieten it."""
  logging.getLogger().setLevel(logging.INFO)
  for noisy in ("absl", "jax._src.xla_bridge"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def validated(config, check=validate):
  """The config after `check` (default: the shared fields), or exit with the validation
  message (no traceback)."""
  try:
    check(config)
    return config
  except ConfigError as e:
    raise SystemExit(f"invalid config: {e}") from None


HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


def hugepages_wanted(environ, platform: str, glibc: tuple[str, str], thp_setting: str) -> bool:
  """Whether `rerun_with_hugepages` should restart this process (see there)."""
  if platform != "linux" or environ.get("LLM_HUGEPAGES") == "0":
    return False
  if "glibc.malloc.hugetlb" in environ.get("GLIBC_TUNABLES", ""):
    return False  # already set (by us, or by the user)
  name, version = glibc
  if name != "glibc" or tuple(int(x) for x in version.split(".")[:2]) < (2, 35):
    return False  # the tunable exists from glibc 2.35
  return "[never]" not in thp_setting


def rerun_with_hugepages() -> None:
  """Restarts this process once with glibc's malloc asking for transparent huge pages.

  XLA on CPU allocates each step's temporaries afresh; with 4 KiB pages the kernel faults in and
  zeroes every page, which cost `small` ~1 s of system time per train step on 2 cores (see the
  README's benchmarks: `train_step_cpu_no_hugepages.json` against `train_step_cpu.json`).
  Set LLM_HUGEPAGES=0 to opt out.
  """
  try:
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
      thp = f.read()
  except OSError:
    return
  if not hugepages_wanted(os.environ, sys.platform, platform.libc_ver(), thp):
    return
  env = dict(os.environ)
  env["GLIBC_TUNABLES"] = ":".join(filter(None, (env.get("GLIBC_TUNABLES"), HUGEPAGE_TUNABLE)))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)

"""The restart that turns on transparent huge pages for glibc's malloc (llm/runtime.py)."""

import os
import pathlib
import platform
import subprocess
import sys

import pytest

from llm.runtime import HUGEPAGE_TUNABLE, hugepages_wanted

ROOT = pathlib.Path(__file__).resolve().parents[1]
THP = "always [madvise] never"


@pytest.mark.parametrize("environ, plat, glibc, thp, want", [
    ({}, "linux", ("glibc", "2.36"), THP, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "linux", ("glibc", "2.36"), THP, False),
    ({"LLM_HUGEPAGES": "0"}, "linux", ("glibc", "2.36"), THP, False),
    ({}, "linux", ("glibc", "2.31"), THP, False),
    ({}, "linux", ("", ""), THP, False),
    ({}, "darwin", ("", ""), THP, False),
    ({}, "linux", ("glibc", "2.36"), "always madvise [never]", False),
])
def test_when_the_restart_happens(environ, plat, glibc, thp, want):
  assert hugepages_wanted(environ, plat, glibc, thp) is want


def test_restart_keeps_the_command_line_and_other_tunables():
  name, version = platform.libc_ver()
  thp = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")
  if not (thp.exists() and hugepages_wanted({}, sys.platform, (name, version), thp.read_text())):
    pytest.skip("no glibc >= 2.35 with transparent huge pages here")
  code = ("import os, sys; from llm.runtime import rerun_with_hugepages; "
          "rerun_with_hugepages(); print(os.environ['GLIBC_TUNABLES'], sys.argv[1:])")
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "LLM_HUGEPAGES")}
  env["GLIBC_TUNABLES"] = "glibc.malloc.arena_max=4"
  out = subprocess.run([sys.executable, "-c", code, "a", "--b=1"], capture_output=True,
                       text=True, cwd=ROOT, env=env, check=True).stdout
  assert out.strip() == f"glibc.malloc.arena_max=4:{HUGEPAGE_TUNABLE} ['a', '--b=1']"

"""Running untrusted generated code: a separate Python process in an empty temporary folder,
isolated mode (-I: no user site, no PYTHONPATH), with wall-clock, CPU, memory, file-size and
process limits. It does not block network access; run evaluations on a machine where that is
acceptable."""

import os
import signal
import subprocess
import sys
import tempfile

_LIMITS = """
import resource
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu} + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
"""


def run_program(source: str, timeout: float = 10.0, memory_bytes: int = 1 << 30) -> dict:
  """{"passed": exit status 0 within the limits, "status": passed|failed|timeout, "stderr"}."""
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "program.py")
    with open(path, "w", encoding="utf-8") as f:
      f.write(source)
    limits = _LIMITS.format(mem=memory_bytes, cpu=max(1, int(timeout)))
    try:
      result = subprocess.run(
          [sys.executable, "-I", "-c", limits + f"\nexec(compile(open({path!r}).read(), "
           f"{path!r}, 'exec'), {{'__name__': '__main__'}})"],
          cwd=folder, capture_output=True, text=True, timeout=timeout,
          env={"PATH": os.environ.get("PATH", ""), "HOME": folder})
    except subprocess.TimeoutExpired:
      return {"passed": False, "status": "timeout", "stderr": ""}
  if result.returncode in (-signal.SIGXCPU, -signal.SIGKILL):  # the CPU limit fired first
    return {"passed": False, "status": "timeout", "stderr": result.stderr[-500:]}
  passed = result.returncode == 0
  return {"passed": passed, "status": "passed" if passed else "failed",
          "stderr": result.stderr[-500:]}

"""Running untrusted generated code: a separate Python process in an empty temporary folder,
isolated mode (-I: no user site, no PYTHONPATH), with wall-clock, CPU, memory, file-size and
process limits, and an audit hook that refuses network access, starting other programs and
writing files outside that folder.

Audit hooks cannot be removed from Python code, but native code (ctypes, compiled extensions)
can step around them: this stops generated code from doing harm by accident, it is not a
defence against code written to escape. Run evaluations on a machine where that is acceptable.
"""

import os
import signal
import subprocess
import sys
import tempfile

_GUARD = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu} + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
_FOLDER = {folder!r}
_REFUSED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
            "os.fork", "os.forkpty", "pty.", "ctypes.dlopen", "shutil.rmtree")

_CHANGES = {{"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.truncate": 1, "os.chmod": 1,
            "os.chown": 1, "os.utime": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2}}

def _guard(event, args):
  if event.startswith(_REFUSED):
    raise PermissionError(f"sandbox: {{event}} is not allowed")
  if event == "open" and _writes(*args[1:]):
    _inside(args[0])
  for path in args[:_CHANGES.get(event, 0)]:
    _inside(path)

def _inside(path):
  if isinstance(path, (str, bytes, os.PathLike)):
    path = os.path.realpath(os.fsdecode(path))
    if not path.startswith(_FOLDER + os.sep):
      raise PermissionError(f"sandbox: changing {{path}} is not allowed")

def _writes(mode, flags):
  if isinstance(mode, str):
    return bool(set(mode) & set("wax+"))
  return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))

sys.addaudithook(_guard)
del _guard
"""


def run_program(source: str, timeout: float = 10.0, memory_bytes: int = 1 << 30) -> dict:
  """{"passed": exit status 0 within the limits, "status": passed|failed|timeout, "stderr"}."""
  with tempfile.TemporaryDirectory() as folder:
    folder = os.path.realpath(folder)
    path = os.path.join(folder, "program.py")
    with open(path, "w", encoding="utf-8") as f:
      f.write(source)
    guard = _GUARD.format(mem=memory_bytes, cpu=max(1, int(timeout)), folder=folder)
    try:
      result = subprocess.run(
          [sys.executable, "-I", "-B", "-c", guard + f"\nexec(compile(open({path!r}).read(), "
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

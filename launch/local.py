"""Runs one command as N local processes of one JAX cluster (CPU: each with k devices), the
way a pod runs it: the same `python -m llm.main ...` on every process.

  python launch/local.py --processes=2 --devices_per_process=4 -- \\
      python -m llm.main --config=experiments/configs/tiny.py --workdir=runs/mp
  python launch/local.py --processes=2 --dry_run -- python -m llm.main ...

Each process gets JAX_COORDINATOR_ADDRESS (127.0.0.1 and a free port), JAX_NUM_PROCESSES,
JAX_PROCESS_ID and, with --devices_per_process, XLA_FLAGS for that many CPU devices; its
output goes to DIR/process-<i>.log (--log_dir) and process 0's is echoed. Exits with the first
non-zero exit status.
"""

import argparse
import os
import shlex
import socket
import subprocess
import sys


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(index: int, processes: int, port: int, devices: int) -> dict:
  env = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(processes),
         "JAX_PROCESS_ID": str(index)}
  if devices:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
  return env


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--processes", type=int, default=2)
  parser.add_argument("--devices_per_process", type=int, default=0,
                      help="CPU devices per process (0: the machine's accelerators)")
  parser.add_argument("--log_dir", default="runs/launch_local")
  parser.add_argument("--dry_run", action="store_true", help="print what would run")
  parser.add_argument("command", nargs=argparse.REMAINDER)
  args = parser.parse_args(argv)
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    parser.error("give the command after --, e.g. -- python -m llm.main --config=...")
  port = free_port()
  envs = [process_env(i, args.processes, port, args.devices_per_process)
          for i in range(args.processes)]
  if args.dry_run:
    for env in envs:
      print(" ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(command))
    return 0
  os.makedirs(args.log_dir, exist_ok=True)
  procs = []
  for i, env in enumerate(envs):
    log = open(os.path.join(args.log_dir, f"process-{i}.log"), "w", encoding="utf-8")
    procs.append((subprocess.Popen(command, env={**os.environ, **env}, stdout=log,
                                   stderr=subprocess.STDOUT), log))
  codes = [p.wait() for p, _ in procs]
  for _, log in procs:
    log.close()
  with open(os.path.join(args.log_dir, "process-0.log"), encoding="utf-8") as f:
    sys.stdout.write(f.read())
  return next((c for c in codes if c), 0)


if __name__ == "__main__":
  sys.exit(main())

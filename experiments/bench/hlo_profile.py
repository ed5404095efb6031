"""Where a jitted step's time goes: per-HLO-op times from a `jax.profiler` trace, attributed to
model parts through the compiled HLO's source locations.

The CPU runtime records one trace event per executed thunk (`args.hlo_op`). The optimised HLO
text names each instruction's opcode, its `op_name` (`jvp` = forward, `transpose(jvp)` =
backward) and a stack frame; walking the frame's parents to the first file of ours that names a
model part (attention.py, mlp.py, ...) gives the part. Fusions are classed as matmul when their
fused computation contains a dot.
"""

import collections
import glob
import gzip
import json
import os
import re
import shutil
import tempfile
import time

import jax

# First file on the stack (innermost first) that names a part; helpers (ops.py, lora.py) pass
# through to their caller.
PART_OF_FILE = {
    "llm/model/attention.py": "attention", "llm/model/rope.py": "rope",
    "llm/model/norm.py": "norm", "llm/model/mlp.py": "mlp",
    "llm/model/moe.py": "moe", "llm/train/losses.py": "cross_entropy",
    "llm/model/transformer.py": "embed_and_head", "llm/model/block.py": "residual",
    "optax/": "optimizer", "llm/train/step.py": "step_bookkeeping",
    "llm/train/lm_task.py": "loss_wrapper",
}
# Our einsum index letters name the matmul's part more precisely than the stack does (the
# custom-VJP backwards of mixed_einsum and blocked attention carry only their equations).
PART_OF_INDEX = (("e", "moe"), ("s", "attention"), ("v", "embed_and_head"), ("m", "mlp"),
                 ("h", "qkvo_proj"))
_EQUATION = re.compile(r"([a-z]+),([a-z]+)->([a-z]+)")
CONTAINERS = ("while", "call", "conditional")  # their events enclose their bodies' events
_INSTR = re.compile(r"^\s*(?:ROOT )?%(\S+) = .*? (\S+?)\((.*)$")
_COMP = re.compile(r"^%(\S+) .*\{$")


def _sections(text: str) -> dict:
  """FileNames / FunctionNames / FileLocations / StackFrames tables of the HLO text."""
  tables, current = {}, None
  for line in text.splitlines():
    if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
      current = tables.setdefault(line, {})
    elif current is not None and line and line[0].isdigit():
      key, value = line.split(" ", 1)
      current[int(key)] = value
    elif current is not None and not line:
      current = None
  return tables


def _frame_files(tables: dict) -> dict:
  """stack_frame_id -> [file, ...] from the innermost frame outwards."""
  files = {k: v.strip('"') for k, v in tables.get("FileNames", {}).items()}
  location_file = {k: files[int(re.search(r"file_name_id=(\d+)", v).group(1))]
                   for k, v in tables.get("FileLocations", {}).items()}
  frames = {}
  for k, v in tables.get("StackFrames", {}).items():
    loc, parent = (int(x) for x in re.findall(r"=(\d+)", v))
    frames[k] = (location_file[loc], parent)
  chains = {}
  for k in frames:
    chain, node, seen = [], k, set()
    while node in frames and node not in seen:
      seen.add(node)
      chain.append(frames[node][0])
      node = frames[node][1]
    chains[k] = chain
  return chains


def part_of(files: list[str]) -> str:
  """The model part of a stack (innermost file first); 'other' when none is ours."""
  for path in files:
    for suffix, part in PART_OF_FILE.items():
      if suffix in path:
        return part
  return "other"


def _equation_part(op_name: str) -> str | None:
  match = _EQUATION.search(op_name)
  if not match:
    return None
  letters = set("".join(match.groups()))
  return next((part for index, part in PART_OF_INDEX if index in letters), None)


def instruction_table(hlo_text: str) -> dict:
  """instruction name -> {opcode, phase, part, matmul} for every instruction of the module."""
  chains = _frame_files(_sections(hlo_text))
  has_dot, comp, table = {}, None, {}
  for line in hlo_text.splitlines():
    head = _COMP.match(line)
    if head:
      comp = head.group(1)
      continue
    match = _INSTR.match(line)
    if not match:
      continue
    name, opcode, rest = match.groups()
    if opcode in ("dot", "convolution"):
      has_dot[comp] = True
    op_name = re.search(r'op_name="([^"]*)"', rest)
    frame = re.search(r"stack_frame_id=(\d+)", rest)
    calls = re.search(r"calls=%([^,\s}]+)", rest)
    op_name = op_name.group(1) if op_name else ""
    phase = ("backward" if "transpose(" in op_name else
             "forward" if "jvp(" in op_name else "update")
    equation = _equation_part(op_name)
    table[name] = {"opcode": opcode, "phase": phase, "calls": calls and calls.group(1),
                   "op_name": op_name.removeprefix("jit(step)/"),
                   "part": equation or part_of(chains.get(int(frame.group(1)), [])
                                               if frame else [])}
  for row in table.values():
    row["matmul"] = row["opcode"] in ("dot", "convolution") or bool(has_dot.get(row["calls"]))
  return table


def trace_events(run, steps: int) -> tuple[list[dict], float]:
  """Runs `run()` `steps` times under the profiler; returns (complete events, wall seconds)."""
  workdir = tempfile.mkdtemp(prefix="hlo_profile_")
  try:
    jax.profiler.start_trace(workdir, create_perfetto_trace=True)
    start = time.perf_counter()
    for _ in range(steps):
      run()
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    path = glob.glob(os.path.join(workdir, "**", "*.trace.json.gz"), recursive=True)[0]
    with gzip.open(path) as f:
      data = json.load(f)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  events = data["traceEvents"] if isinstance(data, dict) else data
  return [e for e in events if e.get("ph") == "X"], wall


def breakdown(events: list[dict], table: dict, module: str, steps: int, wall_s: float) -> dict:
  """Per-step milliseconds of op time by part, phase and matmul/other; top ops; dispatch gap."""
  by = {key: collections.Counter() for key in ("part", "phase", "kind", "part_kind", "op")}
  threads = set()
  for e in events:
    args = e.get("args") or {}
    op = args.get("hlo_op")
    if not op or args.get("hlo_module") != f"jit_{module}" or op not in table:
      continue
    row = table[op]
    if row["opcode"] in CONTAINERS:
      continue
    ms = e["dur"] / 1e3 / steps
    kind = "matmul" if row["matmul"] else "other"
    by["part"][row["part"]] += ms
    by["phase"][row["phase"]] += ms
    by["kind"][kind] += ms
    by["part_kind"][f"{row['part']}/{kind}"] += ms
    by["op"][op] += ms
    threads.add(e.get("tid"))
  total = sum(by["kind"].values())
  rounded = lambda c: {k: round(v, 3) for k, v in c.most_common()}
  return {"step_wall_ms": 1e3 * wall_s / steps, "op_ms_sum": round(total, 3),
          "worker_threads": len(threads),
          "parallelism": round(total / (1e3 * wall_s / steps), 3),
          "by_part_ms": rounded(by["part"]), "by_phase_ms": rounded(by["phase"]),
          "by_kind_ms": rounded(by["kind"]), "by_part_and_kind_ms": rounded(by["part_kind"]),
          "top_ops": [{"op": k, "ms": round(v, 3), "part": table[k]["part"],
                       "source": table[k]["op_name"][-90:]} for k, v in by["op"].most_common(25)],
          "top_ops_by_part": _top_by_part(by["op"], table, 4)}


def _top_by_part(op_ms: collections.Counter, table: dict, n: int) -> dict:
  """The n slowest ops of each part, with their HLO op names (for reading the HLO)."""
  out = collections.defaultdict(list)
  for op, ms in op_ms.most_common():
    part = table[op]["part"]
    if len(out[part]) < n:
      out[part].append({"op": op, "ms": round(ms, 3), "source": table[op]["op_name"][-90:]})
  return dict(out)


def profile_jitted(jitted, args: tuple, run, steps: int) -> dict:
  """Compiles `jitted` for `args`, traces `steps` calls of `run` and breaks the time down."""
  compiled = jitted.lower(*args).compile()
  table = instruction_table(compiled.as_text())
  events, wall = trace_events(run, steps)
  module = re.match(r"HloModule (\S+?),", compiled.as_text()).group(1).removeprefix("jit_")
  return breakdown(events, table, module, steps, wall)

"""Where HF transformers' (PyTorch) train step spends its time, from `torch.profiler`.

Phases come from `record_function` scopes around forward, backward, clipping and the optimizer;
ops are aten's, each counted by its own (self) CPU time and classed by name.
"""

import collections
import time

OP_CLASSES = (  # (substring of the aten op, class); first match wins
    ("scaled_dot_product", "attention"), ("flash_attention", "attention"),
    ("softmax", "cross_entropy"), ("nll_loss", "cross_entropy"),
    ("aten::mm", "matmul"), ("aten::addmm", "matmul"), ("aten::bmm", "matmul"),
    ("aten::linear", "matmul"), ("aten::matmul", "matmul"),
    ("_foreach", "optimizer_math"), ("addcdiv", "optimizer_math"), ("lerp", "optimizer_math"),
    ("embedding", "embedding"), ("copy_", "copies"), ("to_copy", "copies"),
    ("clone", "copies"), ("contiguous", "copies"),
)
PHASES = ("forward", "backward", "clip", "optimizer")


def op_class(name: str) -> str:
  for needle, cls in OP_CLASSES:
    if needle in name:
      return cls
  return "elementwise_and_other"


def _phase(event) -> str:
  node = event
  while node is not None:
    if node.name in PHASES:
      return node.name
    node = node.cpu_parent
  return "backward" if "autograd" in event.name or "Backward" in event.name else "other"


def profile_hf_step(model, ids, optimizer, clip_norm: float, autocast: bool, steps: int):
  """Traces `steps` HF train steps; per-step ms by phase, op class and top ops."""
  import torch
  from torch.profiler import ProfilerActivity, profile, record_function

  def run():
    with record_function("forward"), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
      loss = model(input_ids=ids, labels=ids).loss
    with record_function("backward"):
      loss.backward()
    with record_function("clip"):
      torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    with record_function("optimizer"):
      optimizer.step()
      optimizer.zero_grad(set_to_none=True)

  run()
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    start = time.perf_counter()
    for _ in range(steps):
      run()
    wall = time.perf_counter() - start
  by_phase, by_class, by_op = (collections.Counter() for _ in range(3))
  for event in prof.events():
    if event.name in PHASES:
      continue
    ms = event.self_cpu_time_total / 1e3 / steps
    by_phase[_phase(event)] += ms
    by_class[op_class(event.name)] += ms
    by_op[event.name] += ms
  rounded = lambda c, n=None: {k: round(v, 3) for k, v in c.most_common(n)}
  return {"step_wall_ms": 1e3 * wall / steps, "op_ms_sum": round(sum(by_op.values()), 3),
          "by_phase_ms": rounded(by_phase), "by_class_ms": rounded(by_class),
          "top_ops_ms": rounded(by_op, 15)}

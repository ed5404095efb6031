"""Metric sinks: JSONL and TensorBoard in the workdir."""

import json
import os

import jax

from llm.io import write_text_atomic


def _truncate_jsonl(path: str, last_step: int) -> None:
  """Drops records after `last_step` (written after the checkpoint a run resumes from)."""
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    kept = [line for line in f if line.strip() and json.loads(line)["step"] <= last_step]
  write_text_atomic(path, "".join(kept))


class MetricsWriter:
  """Appends per-step metrics; on resume from `start_step`, later records are replaced."""

  def __init__(self, workdir: str, start_step: int = 0):
    self._jsonl = self._tb = None
    if jax.process_index() != 0:  # the processes of one run share the workdir
      return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "metrics.jsonl")
    _truncate_jsonl(path, start_step)
    self._jsonl = open(path, "a", encoding="utf-8")
    try:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                               purge_step=start_step + 1 if start_step else None)
    except ImportError:  # TensorBoard output is optional
      self._tb = None

  def write(self, step: int, metrics: dict) -> None:
    if self._jsonl is None:
      return
    record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for key, value in record.items():
        if key != "step":
          self._tb.add_scalar(key, value, step)

  def close(self) -> None:
    if self._jsonl is None:
      return
    self._jsonl.close()
    if self._tb is not None:
      self._tb.close()

"""Metric sinks: JSONL and TensorBoard in the workdir."""

import json
import os


class MetricsWriter:

  def __init__(self, workdir: str):
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    try:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    except ImportError:  # TensorBoard output is optional
      self._tb = None

  def write(self, step: int, metrics: dict) -> None:
    record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for key, value in record.items():
        if key != "step":
          self._tb.add_scalar(key, value, step)

  def close(self) -> None:
    self._jsonl.close()
    if self._tb is not None:
      self._tb.close()

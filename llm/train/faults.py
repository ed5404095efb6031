"""Fault injection, to test that training recovers: a Task wrapper whose chosen data batches
turn the loss non-finite or multiply it (a loss spike).

    task = FaultyTask(LMTask(...), {17: "nan", 40: 10.0})   # global batch index -> fault

The fault travels with the batch (a `fault` column), so a rollback that skips the batch also
skips the fault, as skipping bad data would.
"""

import os
import random
import signal
import subprocess
import time

import jax.numpy as jnp
import numpy as np

from llm.train.task import Task


class _FaultyBatches:

  def __init__(self, inner, faults: dict):
    self.inner, self.faults = inner, faults

  def __iter__(self):
    return self

  def __next__(self):
    index = int(self.inner.get_state()["global_batches"])
    batch = dict(next(self.inner))
    fault = self.faults.get(index, 1.0)
    value = np.nan if fault == "nan" else float(fault)
    batch["fault"] = np.full((len(batch["inputs"]),), value, np.float32)
    return batch

  def get_state(self):
    return self.inner.get_state()

  def set_state(self, state):
    self.inner.set_state(state)


class FaultyTask(Task):
  """Delegates everything to `task`; loss_fn multiplies the loss by the batch's fault."""

  def __init__(self, task: Task, faults: dict):
    self.task, self.faults, self.name = task, faults, task.name

  def __getattr__(self, name):  # the wrapped Task's own helpers (model(), config, ...)
    return getattr(self.task, name)

  def init(self, rng):
    return self.task.init(rng)

  def train_batches(self, seed: int):
    return _FaultyBatches(self.task.train_batches(seed), self.faults)

  def eval_batches(self):
    return self.task.eval_batches()

  def loss_fn(self, trainable, frozen, batch, rng):
    fault = jnp.mean(batch["fault"])
    batch = {k: v for k, v in batch.items() if k != "fault"}
    loss, metrics = self.task.loss_fn(trainable, frozen, batch, rng)
    return loss * fault, metrics

  def eval_loss_fn(self, trainable, frozen, batch, rng):
    return self.task.eval_loss_fn(trainable, frozen, batch, rng)

  def logical_axes(self):
    return self.task.logical_axes()

  def observe(self, state):
    self.task.observe(state)

  def flops_per_example(self):
    return self.task.flops_per_example()

  def tokens_per_example(self):
    return self.task.tokens_per_example()


def _steps_logged(metrics_path: str) -> int:
  try:
    with open(metrics_path, encoding="utf-8") as f:
      return sum(1 for line in f if line.strip())
  except FileNotFoundError:
    return 0


def run_with_kills(command: list, metrics_path: str, kills: int, seed: int = 0,
                   max_new_steps: int = 8, timeout: float = 600.0, env=None) -> list[int]:
  """Runs `command` (a training run that resumes from its workdir) and SIGKILLs it `kills`
  times, each after a random 0..max_new_steps new steps appear in metrics.jsonl (so kills land
  at start-up, mid-step and mid-save alike), restarting it each time; then lets it finish.
  Returns the logged step count at each kill."""
  rng = random.Random(seed)
  killed_at, deadline = [], time.monotonic() + timeout
  for attempt in range(kills + 1):
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    target = _steps_logged(metrics_path) + rng.randint(0, max_new_steps)
    while child.poll() is None and time.monotonic() < deadline:
      if attempt < kills and _steps_logged(metrics_path) >= target:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        killed_at.append(_steps_logged(metrics_path))
        break
      time.sleep(0.02)
    if child.poll() is None:  # out of time
      os.killpg(child.pid, signal.SIGKILL)
      raise TimeoutError(f"{command} did not finish within {timeout}s")
    if attempt == kills and child.returncode != 0:
      raise RuntimeError(f"{command} failed after the kills (exit {child.returncode})")
  return killed_at

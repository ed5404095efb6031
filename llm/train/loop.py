"""The one training loop. It knows nothing about what is learned: that is the Task's job.

Owns: the optimizer, the jitted step, metrics (JSONL, TensorBoard, progress bar), evaluation,
and orbax checkpoints; a run started on a workdir with checkpoints resumes from the latest.
"""

import dataclasses
import logging
import math
import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from llm.config import validate
from llm.io import write_json_atomic, write_text_atomic
from llm.model.config_checks import check_model_config
from llm.model.ops import dtype_name
from llm.train.checkpoint import Checkpointer
from llm.train.flops import measure_matmul_peak
from llm.train.metrics import MetricsWriter
from llm.train.optimizer import build_optimizer
from llm.train.placement import place_on_mesh
from llm.train.stability import Incident, LossMonitor, log_event
from llm.train.step import init_state, make_eval_step, make_train_step
from llm.train.task import Task


def save_config(config, workdir: str) -> None:
  """Writes the resolved config to workdir/config.json atomically (process 0 only: every
  process of a run shares the workdir)."""
  if jax.process_index() == 0:
    write_text_atomic(os.path.join(workdir, "config.json"),
                      config.to_json_best_effort(indent=2, sort_keys=True))


def evaluate(eval_step, params, frozen, batches) -> dict:
  """Token-weighted mean loss over the batches, and its perplexity."""
  if not batches:
    return {}
  totals = np.zeros(2)
  for batch in batches:
    totals += np.asarray(jax.device_get(eval_step(params, frozen, batch)))
  loss = totals[0] / max(totals[1], 1e-9)
  return {"eval_loss": float(loss), "eval_perplexity": float(math.exp(min(loss, 80.0)))}


def train(config, task: Task, workdir: str, stop_after: int | None = None) -> dict:
  """Trains `task` to config.train.steps (or stops after `stop_after` steps, checkpointing).

  Resumes from the newest restorable checkpoint in the workdir. On a loss spike or a
  non-finite loss/gradient it rolls back to the last checkpoint and skips the data since then
  (config.stability). Returns {"history": [per-step metrics], "eval": last eval metrics,
  "state": final state, "frozen": frozen pytree, "incidents": number of incidents}.
  """
  validate(config)
  check_model_config(config)
  run = TrainingRun(config, task, workdir)
  end = config.train.steps if stop_after is None else min(config.train.steps, stop_after)
  with jax.set_mesh(run.placement.mesh):  # what the model reads (pipeline stages)
    try:
      run.run_until(end)
    finally:
      run.close()
  return run.result()


class TrainingRun:
  """The state of one run: `step` dispatches a step, `record` books its metrics (or reports
  an incident), `rollback` returns to the last checkpoint after one."""

  def __init__(self, config, task: Task, workdir: str):
    self.config, self.task, self.workdir = config, task, workdir
    train_config, stability = config.train, config.stability
    os.makedirs(workdir, exist_ok=True)
    save_config(config, workdir)
    tx, schedule = build_optimizer(config.optim, train_config.steps)
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    trainable, frozen = task.init(init_rng)
    float16 = dtype_name(config.model.compute_dtype) == "float16"
    state = init_state(trainable, tx, state_rng,
                       stability.initial_loss_scale if float16 else None)
    self.placement = place_on_mesh(config, task, state, frozen)
    self.state, self.frozen = self.placement.state, self.placement.frozen
    self.batches = task.train_batches(config.seed)
    self.checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint)
    self.monitor = LossMonitor(stability, float16)
    self.counters = {"rollbacks": 0, "lr_factor_left": 0}
    self.start = self._resume()
    self.train_step = make_train_step(task, tx, schedule, train_config.grad_accum,
                                      self.placement.step_shardings,
                                      stability.loss_scale_growth)
    self.eval_step = make_eval_step(task)
    self.eval_data = task.eval_batches()
    self.peak = train_config.peak_flops or measure_matmul_peak(
        dtype_name(config.model.compute_dtype),
        1024 if jax.default_backend() == "cpu" else 8192)
    self.flops_per_step = task.flops_per_example() * train_config.batch_size
    self.tokens_per_step = task.tokens_per_example() * train_config.batch_size
    self.writer = MetricsWriter(workdir, self.start)
    self.history, self.eval_metrics, self.incidents = [], {}, 0
    self.bar = tqdm(total=train_config.steps, initial=self.start,
                    disable=not train_config.progress, desc=config.name, dynamic_ncols=True,
                    mininterval=0.1 if sys.stderr.isatty() else 30.0)
    self.last_done = time.perf_counter()

  def _resume(self) -> int:
    """Restores the newest checkpoint if there is one; returns the step to continue after."""
    restored = self.checkpointer.restore_latest(self.state)
    if restored is not None:
      start, self.state, saved = restored
      self.counters.update(self._set_position(saved))
      logging.info("resumed from the checkpoint at step %d", start)
      return start
    if self.config.stability.action == "rollback":  # a step 0 to roll back to
      self.checkpointer.save(0, self.state, self._position())
    return 0

  def _position(self) -> dict:
    """What a checkpoint stores besides the state: data position, loss window, counters."""
    return {"iterator": self.batches.get_state(), "monitor": self.monitor.get_state(),
            **self.counters}

  def _set_position(self, saved: dict) -> dict:
    """Restores the data position and loss window; returns the saved counters."""
    if "iterator" not in saved:  # a checkpoint holding only the iterator state
      saved = {"iterator": saved}
    self.batches.set_state(saved["iterator"])
    self.monitor.set_state(saved.get("monitor", []))
    return {k: v for k, v in saved.items() if k not in ("iterator", "monitor")}

  def step(self):
    """Dispatches one train step on the next batch; returns its (not yet read) metrics."""
    stability = self.config.stability
    batch = self.placement.put_batch(next(self.batches))
    lr_scale = stability.lr_factor if self.counters["lr_factor_left"] > 0 else 1.0
    self.counters["lr_factor_left"] = max(0, self.counters["lr_factor_left"] - 1)
    self.state, device_metrics = self.train_step(self.state, self.frozen, batch, lr_scale)
    self.task.observe(self.state)
    return device_metrics

  def finish(self, device_metrics) -> dict:
    """Waits for a step's metrics; its time is the gap since the previous step ended."""
    metrics = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
    now = time.perf_counter()
    seconds, self.last_done = now - self.last_done, now
    metrics.update(step_seconds=seconds, tokens_per_second=self.tokens_per_step / seconds,
                   mfu=self.flops_per_step / seconds / self.peak)
    return metrics

  def record(self, number: int, metrics: dict, last: int) -> Incident | None:
    """Writes a step's metrics unless they show an incident, which it returns."""
    incident = self.monitor.check(number, metrics)
    if incident is not None:
      return incident
    self.writer.write(number, metrics)
    self.history.append(dict(metrics, step=number))
    self.bar.update(1)
    if number % self.config.train.log_every == 0 or number == last:
      self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['learning_rate']:.2e}",
                           tok_s=f"{metrics['tokens_per_second']:.0f}",
                           mfu=f"{metrics['mfu']:.1%}", refresh=False)
    return None

  def rollback(self, incident: Incident) -> int | None:
    """Logs the incident and acts on it (config.stability.action); returns the step to
    continue after, or None to carry on."""
    stability = self.config.stability
    self.incidents += 1
    event = dataclasses.asdict(incident)
    logging.warning("step %d: %s: %s", incident.step, incident.kind, incident.detail)
    if stability.action == "ignore":
      log_event(self.workdir, dict(event, action="ignore"))
      return None
    if stability.action == "stop" or self.counters["rollbacks"] >= stability.max_rollbacks:
      log_event(self.workdir, dict(event, action="stop"))
      why = ("stability.action=stop" if stability.action == "stop" else
             f"{self.counters['rollbacks']} rollbacks already (stability.max_rollbacks)")
      raise RuntimeError(f"training stopped at step {incident.step}: {incident.kind} "
                         f"({incident.detail}); {why}. Lower optim.lr, raise optim.warmup_steps "
                         "or inspect the data around this step; events.jsonl has the history")
    self.checkpointer.wait()
    restored = self.checkpointer.restore_latest(self.state)
    if restored is None:
      raise RuntimeError(f"step {incident.step}: {incident.kind}, and no checkpoint to roll "
                         f"back to in {self.checkpointer.directory}")
    good, self.state, saved = restored
    self._set_position(saved)
    skipped = incident.step - good + stability.skip_batches
    for _ in range(skipped):  # the batches since the checkpoint, the offending one among them
      next(self.batches)
    self.counters["rollbacks"] += 1
    self.counters["lr_factor_left"] = stability.lr_factor_steps
    log_event(self.workdir, dict(event, action="rollback", to_step=good,
                                 skipped_batches=skipped, rollbacks=self.counters["rollbacks"]))
    self.writer.close()
    self.writer = MetricsWriter(self.workdir, good)  # the curve continues from the restore
    self.history = [h for h in self.history if h["step"] <= good]
    self.bar.n = good
    return good

  def run_until(self, end: int) -> None:
    """Steps to `end`. A step's metrics are read only after the next step is dispatched, so
    the device never waits for the host to fetch a batch."""
    pending, number = None, self.start
    eval_every = self.config.train.eval_every
    while number < end:
      number += 1
      device_metrics = self.step()
      incident = None
      if pending is not None:
        incident = self.record(pending[0], self.finish(pending[1]), end)
      pending = (number, device_metrics)
      evaluate_now = number == end or (eval_every and number % eval_every == 0)
      save_now = self.checkpointer.due(number) or number == end
      if incident is None and (evaluate_now or save_now):
        pending = None
        incident = self._evaluate_and_save(number, device_metrics, evaluate_now, save_now, end)
      if incident is not None:
        pending = None
        resumed_at = self.rollback(incident)
        number = number if resumed_at is None else resumed_at
        self.last_done = time.perf_counter()

  def _evaluate_and_save(self, number, device_metrics, evaluate_now, save_now, end):
    metrics = self.finish(device_metrics)
    if evaluate_now:
      self.eval_metrics = evaluate(self.eval_step, self.state["params"], self.frozen,
                                   self.eval_data)
      metrics.update(self.eval_metrics)
    incident = self.record(number, metrics, end)
    if incident is None and save_now:
      self.checkpointer.save(number, self.state, self._position())
    self.last_done = time.perf_counter()  # evaluation and saving are not step time
    return incident

  def close(self) -> None:
    self.bar.close()
    self.writer.close()
    self.checkpointer.close()
    if jax.process_index() == 0:
      write_json_atomic(os.path.join(self.workdir, "peak_flops.json"),
                        {"peak_flops": self.peak, "dtype": self.config.model.compute_dtype})

  def result(self) -> dict:
    return {"history": self.history, "eval": self.eval_metrics, "state": self.state,
            "frozen": self.frozen, "incidents": self.incidents}

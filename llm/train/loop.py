"""The one training loop. It knows nothing about what is learned: that is the Task's job.

Owns: the optimizer, the jitted step, metrics (JSONL, TensorBoard, progress bar), evaluation,
and orbax checkpoints; a run started on a workdir with checkpoints resumes from the latest.
"""

import dataclasses
import json
import logging
import math
import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from llm.config import validate
from llm.model.ops import dtype_name
from llm.train.checkpoint import Checkpointer
from llm.train.flops import measure_matmul_peak
from llm.train.metrics import MetricsWriter
from llm.train.optimizer import build_optimizer
from llm.train.placement import place_on_mesh
from llm.train.stability import Incident, LossMonitor, log_event
from llm.train.step import init_state, make_eval_step, make_train_step


def save_config(config, workdir: str) -> None:
  """Writes the resolved config to workdir/config.json atomically (process 0 only: every
  process of a run shares the workdir)."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, "config.json")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  os.replace(path + ".tmp", path)


def evaluate(eval_step, params, frozen, batches) -> dict:
  """Token-weighted mean loss over the batches, and its perplexity."""
  if not batches:
    return {}
  totals = np.zeros(2)
  for batch in batches:
    totals += np.asarray(jax.device_get(eval_step(params, frozen, batch)))
  loss = totals[0] / max(totals[1], 1e-9)
  return {"eval_loss": float(loss), "eval_perplexity": float(math.exp(min(loss, 80.0)))}


def _position(batches, monitor, counters: dict) -> dict:
  """What a checkpoint stores besides the state: data position, loss window, counters."""
  return {"iterator": batches.get_state(), "monitor": monitor.get_state(), **counters}


def _set_position(saved: dict, batches, monitor) -> dict:
  """Restores the data position and loss window; returns the saved counters."""
  if "iterator" not in saved:  # a checkpoint holding only the iterator state
    saved = {"iterator": saved}
  batches.set_state(saved["iterator"])
  monitor.set_state(saved.get("monitor", []))
  return {k: v for k, v in saved.items() if k not in ("iterator", "monitor")}


def train(config, task, workdir: str, stop_after: int | None = None) -> dict:
  """Trains `task` to config.train.steps (or stops after `stop_after` steps, checkpointing).

  Resumes from the newest restorable checkpoint in the workdir. On a loss spike or a
  non-finite loss/gradient it rolls back to the last checkpoint and skips the data since then
  (config.stability). Returns {"history": [per-step metrics], "eval": last eval metrics,
  "state": final state, "frozen": frozen pytree, "incidents": number of incidents}.
  """
  validate(config)
  t, s = config.train, config.stability
  os.makedirs(workdir, exist_ok=True)
  save_config(config, workdir)
  tx, schedule = build_optimizer(config.optim, t.steps)
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  trainable, frozen = task.init(init_rng)
  float16 = dtype_name(config.model.compute_dtype) == "float16"
  state = init_state(trainable, tx, state_rng, s.initial_loss_scale if float16 else None)
  placement = place_on_mesh(config, task, state, frozen)
  state, frozen = placement.state, placement.frozen
  batches = task.train_batches(config.seed)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint)
  monitor = LossMonitor(s, float16)
  counters = {"rollbacks": 0, "lr_factor_left": 0}
  restored = checkpointer.restore_latest(state)
  start = 0
  if restored is not None:
    start, state, saved = restored
    counters.update(_set_position(saved, batches, monitor))
    logging.info("resumed from the checkpoint at step %d", start)
  elif s.action == "rollback":  # something to roll back to before the first periodic save
    checkpointer.save(0, state, _position(batches, monitor, counters))
  end = t.steps if stop_after is None else min(t.steps, stop_after)

  train_step = make_train_step(task, tx, schedule, t.grad_accum, placement.step_shardings,
                               s.loss_scale_growth)
  eval_step = make_eval_step(task)
  eval_data = task.eval_batches()
  peak = t.peak_flops or measure_matmul_peak(
      dtype_name(config.model.compute_dtype), 1024 if jax.default_backend() == "cpu" else 8192)
  flops_per_step = task.flops_per_example() * t.batch_size
  tokens_per_step = task.tokens_per_example() * t.batch_size
  writer = MetricsWriter(workdir, start)
  history, eval_metrics, incidents = [], {}, 0
  bar = tqdm(total=t.steps, initial=start, disable=not t.progress, desc=config.name,
             dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)
  last_done = time.perf_counter()

  def finish(device_metrics):
    """Waits for a step's metrics; its time is the gap since the previous step ended."""
    nonlocal last_done
    metrics = {k: float(v) for k, v in jax.device_get(device_metrics).items()}
    now = time.perf_counter()
    seconds, last_done = now - last_done, now
    metrics.update(step_seconds=seconds, tokens_per_second=tokens_per_step / seconds,
                   mfu=flops_per_step / seconds / peak)
    return metrics

  def record(number, metrics):
    """Writes a step's metrics unless they show an incident, which it returns."""
    incident = monitor.check(number, metrics)
    if incident is not None:
      return incident
    writer.write(number, metrics)
    history.append(dict(metrics, step=number))
    bar.update(1)
    if number % t.log_every == 0 or number == end:
      bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['learning_rate']:.2e}",
                      tok_s=f"{metrics['tokens_per_second']:.0f}", mfu=f"{metrics['mfu']:.1%}",
                      refresh=False)
    return None

  def respond(incident: Incident):
    """Logs the incident and acts on it; returns the step to continue after."""
    nonlocal state, writer, history, incidents
    incidents += 1
    event = dataclasses.asdict(incident)
    logging.warning("step %d: %s: %s", incident.step, incident.kind, incident.detail)
    if s.action == "ignore":
      log_event(workdir, dict(event, action="ignore"))
      return None
    if s.action == "stop" or counters["rollbacks"] >= s.max_rollbacks:
      log_event(workdir, dict(event, action="stop"))
      why = ("stability.action=stop" if s.action == "stop" else
             f"{counters['rollbacks']} rollbacks already (stability.max_rollbacks)")
      raise RuntimeError(f"training stopped at step {incident.step}: {incident.kind} "
                         f"({incident.detail}); {why}. Lower optim.lr, raise optim.warmup_steps "
                         "or inspect the data around this step; events.jsonl has the history")
    checkpointer.wait()
    restored = checkpointer.restore_latest(state)
    if restored is None:
      raise RuntimeError(f"step {incident.step}: {incident.kind}, and no checkpoint to roll "
                         f"back to in {checkpointer.directory}")
    good, state, saved = restored
    _set_position(saved, batches, monitor)
    skipped = incident.step - good + s.skip_batches
    for _ in range(skipped):  # the batches since the checkpoint, the offending one among them
      next(batches)
    counters["rollbacks"] += 1
    counters["lr_factor_left"] = s.lr_factor_steps
    log_event(workdir, dict(event, action="rollback", to_step=good, skipped_batches=skipped,
                            rollbacks=counters["rollbacks"]))
    writer.close()
    writer = MetricsWriter(workdir, good)  # the curve continues from the restored step
    history = [h for h in history if h["step"] <= good]
    bar.n = good
    return good

  pending = None  # the dispatched step whose metrics are not read yet
  number = start
  mesh_context = jax.set_mesh(placement.mesh)  # what the model reads (pipeline stages)
  mesh_context.__enter__()
  try:
    while number < end:
      number += 1
      batch = placement.put_batch(next(batches))
      lr_scale = s.lr_factor if counters["lr_factor_left"] > 0 else 1.0
      counters["lr_factor_left"] = max(0, counters["lr_factor_left"] - 1)
      state, device_metrics = train_step(state, frozen, batch, lr_scale)
      if hasattr(task, "observe"):  # e.g. PPO samples its next rollout from these parameters
        task.observe(state)
      # Read the previous step's metrics only now, so the device is never idle waiting for
      # the host to fetch the next batch and dispatch.
      incident = None
      if pending is not None:
        incident = record(pending[0], finish(pending[1]))
      pending = (number, device_metrics)
      evaluate_now = number == end or (t.eval_every and number % t.eval_every == 0)
      save_now = checkpointer.due(number) or number == end
      if incident is None and (evaluate_now or save_now):
        metrics = finish(device_metrics)
        pending = None
        if evaluate_now:
          eval_metrics = evaluate(eval_step, state["params"], frozen, eval_data)
          metrics.update(eval_metrics)
        incident = record(number, metrics)
        if incident is None and save_now:
          checkpointer.save(number, state, _position(batches, monitor, counters))
        last_done = time.perf_counter()  # evaluation and saving are not step time
      if incident is not None:
        pending = None
        resumed_at = respond(incident)
        number = number if resumed_at is None else resumed_at
        last_done = time.perf_counter()
  finally:
    mesh_context.__exit__(None, None, None)
    bar.close()
    writer.close()
    checkpointer.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "peak_flops.json"), "w", encoding="utf-8") as f:
      json.dump({"peak_flops": peak, "dtype": config.model.compute_dtype}, f)
  return {"history": history, "eval": eval_metrics, "state": state, "frozen": frozen,
          "incidents": incidents}

"""The one training loop. It knows nothing about what is learned: that is the Task's job.

Owns: the optimizer, the jitted step, metrics (JSONL, TensorBoard, progress bar), evaluation,
and orbax checkpoints; a run started on a workdir with checkpoints resumes from the latest.
"""

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
from llm.train.checkpoint import Checkpointer
from llm.train.flops import measure_matmul_peak
from llm.train.metrics import MetricsWriter
from llm.train.optimizer import build_optimizer
from llm.train.placement import place_on_mesh
from llm.train.step import init_state, make_eval_step, make_train_step


def save_config(config, workdir: str) -> None:
  """Writes the resolved config to workdir/config.json atomically."""
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


def train(config, task, workdir: str, stop_after: int | None = None) -> dict:
  """Trains `task` to config.train.steps (or stops after `stop_after` steps, checkpointing).

  Returns {"history": [per-step metrics], "eval": last eval metrics, "state": final state,
  "frozen": frozen pytree}.
  """
  validate(config)
  t = config.train
  os.makedirs(workdir, exist_ok=True)
  save_config(config, workdir)
  tx, schedule = build_optimizer(config.optim, t.steps)
  init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  trainable, frozen = task.init(init_rng)
  state = init_state(trainable, tx, state_rng)
  placement = place_on_mesh(config, task, state, frozen)
  state, frozen = placement.state, placement.frozen
  batches = task.train_batches(config.seed)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), config.checkpoint)
  start = checkpointer.latest_step() or 0
  if start:
    state, data_state = checkpointer.restore(start, state)
    batches.set_state(data_state)
    logging.info("resumed from the checkpoint at step %d", start)
  end = t.steps if stop_after is None else min(t.steps, stop_after)

  train_step = make_train_step(task, tx, schedule, t.grad_accum, placement.step_shardings)
  eval_step = make_eval_step(task)
  eval_data = task.eval_batches()
  peak = t.peak_flops or measure_matmul_peak(
      config.model.compute_dtype, 1024 if jax.default_backend() == "cpu" else 8192)
  flops_per_step = task.flops_per_example() * t.batch_size
  tokens_per_step = task.tokens_per_example() * t.batch_size
  writer = MetricsWriter(workdir, start)
  history, eval_metrics = [], {}
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
    writer.write(number, metrics)
    history.append(metrics)
    bar.update(1)
    if number % t.log_every == 0 or number == end:
      bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['learning_rate']:.2e}",
                      tok_s=f"{metrics['tokens_per_second']:.0f}", mfu=f"{metrics['mfu']:.1%}",
                      refresh=False)

  pending = None  # the dispatched step whose metrics are not read yet
  mesh_context = jax.set_mesh(placement.mesh)  # what the model reads (pipeline stages)
  mesh_context.__enter__()
  try:
    for number in range(start + 1, end + 1):
      batch = placement.put_batch(next(batches))
      state, device_metrics = train_step(state, frozen, batch)
      # Read the previous step's metrics only now, so the device is never idle waiting for
      # the host to fetch the next batch and dispatch.
      if pending is not None:
        record(pending[0], finish(pending[1]))
      pending = (number, device_metrics)
      evaluate_now = number == end or (t.eval_every and number % t.eval_every == 0)
      save_now = checkpointer.due(number) or number == end
      if evaluate_now or save_now:
        metrics = finish(device_metrics)
        pending = None
        if evaluate_now:
          eval_metrics = evaluate(eval_step, state["params"], frozen, eval_data)
          metrics.update(eval_metrics)
        record(number, metrics)
        if save_now:
          checkpointer.save(number, state, batches.get_state())
        last_done = time.perf_counter()  # evaluation and saving are not step time
  finally:
    mesh_context.__exit__(None, None, None)
    bar.close()
    writer.close()
    checkpointer.close()
  with open(os.path.join(workdir, "peak_flops.json"), "w", encoding="utf-8") as f:
    json.dump({"peak_flops": peak, "dtype": config.model.compute_dtype}, f)
  return {"history": history, "eval": eval_metrics, "state": state, "frozen": frozen}

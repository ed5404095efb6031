"""The jit-compiled train and eval steps, on pure pytrees.

State is a dict {"step", "params", "opt_state", "rng"} (+ "loss_scale" in float16). The batch
is split into `grad_accum` micro-batches; their gradients are averaged with the weights the
Task reports. A step whose loss or gradients are not finite changes nothing but the step
count (and, in float16, halves the loss scale); `nonfinite` says so in the metrics, and the
update norm is 0.
"""

import jax
import jax.numpy as jnp
import optax

from llm.train.loss_scale import all_finite, init_loss_scale, update_loss_scale
from llm.train.task import Task


def init_state(trainable, tx, rng, loss_scale: float | None = None):
  """loss_scale: the initial dynamic loss scale (float16 training), or None."""
  state = {"step": jnp.zeros((), jnp.int32), "params": trainable,
           "opt_state": tx.init(trainable), "rng": rng}
  if loss_scale:
    state["loss_scale"] = init_loss_scale(loss_scale)
  return state


def _weighted_grads(task, params, frozen, batch, rng, scale):
  def scaled_loss(params):
    loss, metrics = task.loss_fn(params, frozen, batch, rng)
    return loss * scale, (loss, metrics)

  (_, (loss, metrics)), grads = jax.value_and_grad(scaled_loss, has_aux=True)(params)
  weight = jnp.asarray(metrics.pop("weight", 1.0), jnp.float32)
  grads = jax.tree.map(lambda g: g * (weight / scale), grads)
  return grads, loss * weight, jax.tree.map(lambda x: x * weight, metrics), weight


def make_train_step(task: Task, tx, schedule, grad_accum: int, shardings=None,
                    loss_scale_growth: int = 2000):
  """Returns jitted step(state, frozen, batch, lr_scale=1.0) -> (state, metrics); `state` is
  donated. lr_scale multiplies this step's update (the learning rate after a rollback).

  `shardings` = (state, frozen, batch, replicated) NamedShardings pins the layout of the
  inputs and outputs on the mesh (see llm/parallel); None leaves placement to JAX."""

  def step(state, frozen, batch, lr_scale):
    rng = jax.random.fold_in(state["rng"], state["step"])
    params = state["params"]
    scale = state["loss_scale"]["scale"] if "loss_scale" in state else jnp.float32(1.0)
    if grad_accum == 1:
      grads, loss, metrics, weight = _weighted_grads(task, params, frozen, batch, rng, scale)
    else:
      micro = jax.tree.map(lambda x: x.reshape(grad_accum, -1, *x.shape[1:]), batch)

      def accumulate(carry, inputs):
        index, micro_batch = inputs
        out = _weighted_grads(task, params, frozen, micro_batch,
                              jax.random.fold_in(rng, index), scale)
        return jax.tree.map(jnp.add, carry, out), None

      zeros = jax.eval_shape(lambda: _weighted_grads(
          task, params, frozen, jax.tree.map(lambda x: x[0], micro), rng, scale))
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)
      (grads, loss, metrics, weight), _ = jax.lax.scan(
          accumulate, zeros, (jnp.arange(grad_accum), micro))
    normalise = lambda tree: jax.tree.map(lambda x: x / jnp.maximum(weight, 1e-9), tree)
    grads, loss, metrics = normalise(grads), normalise(loss), normalise(metrics)
    finite = all_finite(grads) & jnp.isfinite(loss)

    def apply(params, opt_state):
      updates, opt_state = tx.update(grads, opt_state, params)
      updates = jax.tree.map(lambda u: u * lr_scale, updates)
      return optax.apply_updates(params, updates), opt_state, optax.tree.norm(updates)

    def skip(params, opt_state):
      return params, opt_state, jnp.zeros((), jnp.float32)

    # A branch, not a select of both results: a skipped step costs nothing, and a taken one
    # does not pass over the whole state again to choose (~2% of a CPU step).
    new_params, opt_state, update_norm = jax.lax.cond(finite, apply, skip, params,
                                                      state["opt_state"])
    new_state = {"step": state["step"] + 1, "params": new_params, "opt_state": opt_state,
                 "rng": state["rng"]}
    metrics = dict(metrics, loss=loss, perplexity=jnp.exp(loss),
                   grad_norm=optax.tree.norm(grads), update_norm=update_norm,
                   learning_rate=schedule(state["step"]) * lr_scale, loss_weight=weight,
                   nonfinite=1.0 - finite.astype(jnp.float32))
    if "loss_scale" in state:
      new_state["loss_scale"] = update_loss_scale(state["loss_scale"], finite,
                                                  loss_scale_growth)
      metrics["loss_scale"] = scale
    return new_state, metrics

  def with_default_lr_scale(jitted):
    def call(state, frozen, batch, lr_scale=1.0):
      return jitted(state, frozen, batch, jnp.asarray(lr_scale, jnp.float32))
    call.jitted = jitted  # for .lower(): compiled HLO, cost analysis, profiles
    return call

  if shardings is None:
    return with_default_lr_scale(jax.jit(step, donate_argnums=(0,)))
  state_sh, frozen_sh, batch_sh, replicated = shardings
  return with_default_lr_scale(jax.jit(
      step, donate_argnums=(0,), in_shardings=(state_sh, frozen_sh, batch_sh, replicated),
      out_shardings=(state_sh, replicated)))


def make_eval_step(task: Task):
  """Returns jitted eval(params, frozen, batch) -> (loss * weight, weight) of the Task's
  evaluation loss."""

  def evaluate(params, frozen, batch):
    loss, metrics = task.eval_loss_fn(params, frozen, batch, jax.random.key(0))
    weight = jnp.asarray(metrics.get("weight", 1.0), jnp.float32)
    return loss * weight, weight

  return jax.jit(evaluate)

"""The jit-compiled train and eval steps, on pure pytrees.

State is a dict {"step", "params", "opt_state", "rng"}. The batch is split into
`grad_accum` micro-batches; their gradients are averaged with the weights the Task reports.
"""

import jax
import jax.numpy as jnp
import optax


def init_state(trainable, tx, rng):
  return {"step": jnp.zeros((), jnp.int32), "params": trainable,
          "opt_state": tx.init(trainable), "rng": rng}


def _weighted_grads(task, params, frozen, batch, rng):
  (loss, metrics), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(
      params, frozen, batch, rng)
  weight = jnp.asarray(metrics.pop("weight", 1.0), jnp.float32)
  scale = lambda tree: jax.tree.map(lambda x: x * weight, tree)
  return scale(grads), loss * weight, scale(metrics), weight


def make_train_step(task, tx, schedule, grad_accum: int, shardings=None):
  """Returns jitted step(state, frozen, batch) -> (state, metrics); `state` is donated.

  `shardings` = (state, frozen, batch, replicated) NamedShardings pins the layout of the
  inputs and outputs on the mesh (see llm/parallel); None leaves placement to JAX."""

  def step(state, frozen, batch):
    rng = jax.random.fold_in(state["rng"], state["step"])
    params = state["params"]
    if grad_accum == 1:
      grads, loss, metrics, weight = _weighted_grads(task, params, frozen, batch, rng)
    else:
      micro = jax.tree.map(lambda x: x.reshape(grad_accum, -1, *x.shape[1:]), batch)

      def accumulate(carry, inputs):
        index, micro_batch = inputs
        out = _weighted_grads(task, params, frozen, micro_batch, jax.random.fold_in(rng, index))
        return jax.tree.map(jnp.add, carry, out), None

      zeros = jax.eval_shape(
          lambda: _weighted_grads(task, params, frozen, jax.tree.map(lambda x: x[0], micro), rng))
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros)
      (grads, loss, metrics, weight), _ = jax.lax.scan(
          accumulate, zeros, (jnp.arange(grad_accum), micro))
    normalise = lambda tree: jax.tree.map(lambda x: x / jnp.maximum(weight, 1e-9), tree)
    grads, loss, metrics = normalise(grads), normalise(loss), normalise(metrics)
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    new_state = {"step": state["step"] + 1, "params": optax.apply_updates(params, updates),
                 "opt_state": opt_state, "rng": state["rng"]}
    metrics = dict(metrics, loss=loss, perplexity=jnp.exp(loss),
                   grad_norm=optax.tree.norm(grads), update_norm=optax.tree.norm(updates),
                   learning_rate=schedule(state["step"]), loss_weight=weight)
    return new_state, metrics

  if shardings is None:
    return jax.jit(step, donate_argnums=(0,))
  state_sh, frozen_sh, batch_sh, replicated = shardings
  return jax.jit(step, donate_argnums=(0,), in_shardings=(state_sh, frozen_sh, batch_sh),
                 out_shardings=(state_sh, replicated))


def make_eval_step(task):
  """Returns jitted eval(params, frozen, batch) -> (loss * weight, weight)."""

  loss_fn = getattr(task, "eval_loss_fn", task.loss_fn)  # e.g. without auxiliary losses

  def evaluate(params, frozen, batch):
    loss, metrics = loss_fn(params, frozen, batch, jax.random.key(0))
    weight = jnp.asarray(metrics.get("weight", 1.0), jnp.float32)
    return loss * weight, weight

  return jax.jit(evaluate)

"""Dynamic loss scaling for float16 training (Micikevicius et al., 2018).

The loss is multiplied by `scale` before differentiation so small gradients survive float16;
the gradients are divided by it again. A step whose gradients overflow (any inf/nan) is
skipped: parameters and optimizer state stay as they were, and the scale halves. After
`growth_interval` good steps in a row the scale doubles.
"""

import jax
import jax.numpy as jnp


def init_loss_scale(initial: float) -> dict:
  return {"scale": jnp.asarray(initial, jnp.float32), "good_steps": jnp.zeros((), jnp.int32)}


def all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def update_loss_scale(loss_scale: dict, finite, growth_interval: int, factor: float = 2.0,
                      minimum: float = 1.0) -> dict:
  """Halve on overflow, grow after `growth_interval` finite steps."""
  good = jnp.where(finite, loss_scale["good_steps"] + 1, 0)
  grow = good >= growth_interval
  scale = jnp.where(finite, jnp.where(grow, loss_scale["scale"] * factor, loss_scale["scale"]),
                    jnp.maximum(loss_scale["scale"] / factor, minimum))
  return {"scale": scale, "good_steps": jnp.where(grow, 0, good)}

"""AdamW with global-norm clipping; weight decay skips norm scales and biases."""

import jax
import optax

from llm.train.schedule import warmup_cosine


def _path_names(path) -> list[str]:
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def decay_mask(params):
  """True for parameters that get weight decay: everything but norms and biases."""
  def wants_decay(path, _):
    return not any("norm" in name or name == "bias" for name in _path_names(path))
  return jax.tree_util.tree_map_with_path(wants_decay, params)


def build_optimizer(optim_config, total_steps: int):
  """Returns (optax transformation, learning-rate schedule)."""
  schedule = warmup_cosine(optim_config.lr, optim_config.warmup_steps, total_steps,
                           optim_config.min_lr_ratio)
  tx = optax.chain(
      optax.clip_by_global_norm(optim_config.clip_norm),
      optax.adamw(schedule, b1=optim_config.b1, b2=optim_config.b2, eps=optim_config.eps,
                  weight_decay=optim_config.weight_decay, mask=decay_mask))
  return tx, schedule

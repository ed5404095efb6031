"""Loss functions shared by tasks."""

import jax
import jax.numpy as jnp


def masked_cross_entropy(logits, targets, loss_mask):
  """Mean next-token cross-entropy over positions where loss_mask is 1.

  logits [batch, seq, vocab] float32, targets/loss_mask [batch, seq] -> (loss, num_tokens).
  """
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  mask = loss_mask.astype(jnp.float32)
  num_tokens = jnp.sum(mask)
  loss = jnp.sum((log_z - target_logit) * mask) / jnp.maximum(num_tokens, 1.0)
  return loss, num_tokens

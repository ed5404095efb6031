"""Preference-optimisation losses on sequence log-probabilities (DPO and its variants).

Inputs are the summed log-probabilities of the chosen and rejected responses under the policy
and under the frozen reference. With h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) -
log ref(y_l)):
- sigmoid (DPO, Rafailov et al. 2023): -log sigmoid(beta h); with label smoothing e (the
  "conservative" DPO), -(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h);
- ipo (Azar et al. 2023): (h - 1 / (2 beta))^2.
"""

import jax
import jax.numpy as jnp



def _sigmoid(h, beta, label_smoothing):
  return (-(1.0 - label_smoothing) * jax.nn.log_sigmoid(beta * h)
          - label_smoothing * jax.nn.log_sigmoid(-beta * h))


def _ipo(h, beta, label_smoothing):
  del label_smoothing
  return (h - 1.0 / (2.0 * beta)) ** 2


# loss_type -> per-pair loss(h, beta, label_smoothing); a new variant is one entry here.
LOSSES = {"sigmoid": _sigmoid, "ipo": _ipo}
LOSS_TYPES = tuple(LOSSES)


def sequence_logprobs(logits, targets, mask):
  """Sum over positions of log p(target) where mask is set: [batch, seq, vocab] -> [batch]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  return jnp.sum(picked * mask, axis=-1)


def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, *,
             beta: float = 0.1, label_smoothing: float = 0.0, loss_type: str = "sigmoid"):
  """(mean loss, metrics): rewards/chosen and rewards/rejected (beta x log-ratio), accuracy
  (chosen reward above rejected) and margin, averaged over pairs."""
  chosen_ratio = policy_chosen - reference_chosen
  rejected_ratio = policy_rejected - reference_rejected
  h = chosen_ratio - rejected_ratio
  if loss_type not in LOSSES:
    raise ValueError(f"unknown DPO loss_type {loss_type!r}; choose one of {LOSS_TYPES}")
  losses = LOSSES[loss_type](h, beta, label_smoothing)
  chosen_reward, rejected_reward = beta * chosen_ratio, beta * rejected_ratio
  metrics = {"rewards/chosen": jnp.mean(chosen_reward),
             "rewards/rejected": jnp.mean(rejected_reward),
             "rewards/accuracy": jnp.mean((chosen_reward > rejected_reward).astype(jnp.float32)),
             "rewards/margin": jnp.mean(chosen_reward - rejected_reward)}
  return jnp.mean(losses), metrics


def bradley_terry_loss(chosen_scores, rejected_scores, margin=None):
  """Reward-model loss -log sigmoid(r_w - r_l - margin), and pair accuracy."""
  diff = chosen_scores - rejected_scores
  if margin is not None:
    diff = diff - margin
  return (jnp.mean(-jax.nn.log_sigmoid(diff)),
          {"accuracy": jnp.mean((chosen_scores > rejected_scores).astype(jnp.float32))})

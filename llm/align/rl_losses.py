"""The pieces of PPO and GRPO for language models, as pure functions on [batch, T] arrays.

`mask` marks the response tokens (the actions); everything is masked means over them.
- per-token rewards: -kl_coef * (log pi - log ref) at every response token, plus the reward
  model's score at the last one (Ziegler et al. 2019);
- GAE (Schulman et al. 2016): delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t +
  gamma lambda A_{t+1}, zero beyond the last response token; returns = A + V;
- the clipped policy objective and the clipped value loss of PPO;
- an adaptive KL coefficient that steers the measured KL to a target;
- GRPO's group-relative advantages: each sample's score against its prompt group's.
"""

import jax
import jax.numpy as jnp


def masked_mean(x, mask, axis=None):
  return jnp.sum(x * mask, axis=axis) / jnp.maximum(jnp.sum(mask, axis=axis), 1.0)


def whiten(x, mask, shift_mean: bool = True):
  """(x - mean) / std over the masked entries (the mean kept when shift_mean is False)."""
  mean = masked_mean(x, mask)
  var = masked_mean((x - mean) ** 2, mask)
  out = (x - mean) * jax.lax.rsqrt(var + 1e-8)
  return (out if shift_mean else out + mean) * mask


def kl_penalised_rewards(scores, policy_logprobs, reference_logprobs, mask, kl_coef):
  """[batch, T] rewards: -kl_coef * (log pi - log ref) per response token, plus the score
  (one per sequence) at its last response token. Also returns the per-token KL estimate."""
  kl = (policy_logprobs - reference_logprobs) * mask
  last = jnp.cumsum(mask[:, ::-1], axis=1)[:, ::-1] == 1  # the last masked position of a row
  rewards = -kl_coef * kl + jnp.where(last & (mask > 0), scores[:, None], 0.0)
  return rewards, kl


def gae(rewards, values, mask, gamma: float, lam: float):
  """(advantages, returns) by a reverse scan over time; nothing flows across masked-out
  positions (the episode ends at its last response token)."""
  next_values = jnp.concatenate([values[:, 1:] * mask[:, 1:], jnp.zeros_like(values[:, :1])], 1)
  deltas = (rewards + gamma * next_values - values) * mask

  def step(carry, inputs):
    delta, m = inputs
    advantage = delta + gamma * lam * carry * m
    return advantage * m, advantage * m

  _, advantages = jax.lax.scan(step, jnp.zeros(rewards.shape[0]), (deltas.T[::-1], mask.T[::-1]))
  advantages = advantages[::-1].T
  return advantages, (advantages + values) * mask


def ppo_policy_loss(logprobs, old_logprobs, advantages, mask, clip: float = 0.2):
  """-E[min(rho A, clip(rho, 1 - clip, 1 + clip) A)] with rho = exp(log pi - log pi_old)."""
  ratio = jnp.exp(logprobs - old_logprobs)
  unclipped = ratio * advantages
  clipped = jnp.clip(ratio, 1.0 - clip, 1.0 + clip) * advantages
  loss = -masked_mean(jnp.minimum(unclipped, clipped), mask)
  metrics = {"policy/clip_fraction": masked_mean((jnp.abs(ratio - 1.0) > clip).astype(
      jnp.float32), mask), "policy/approx_kl": masked_mean(0.5 * (logprobs - old_logprobs) ** 2,
                                                           mask)}
  return loss, metrics


def ppo_value_loss(values, old_values, returns, mask, clip: float = 0.2):
  """0.5 E[max((V - R)^2, (clip(V, V_old +- clip) - R)^2)]."""
  clipped = old_values + jnp.clip(values - old_values, -clip, clip)
  loss = 0.5 * masked_mean(jnp.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)
  return loss, {"value/clip_fraction": masked_mean(
      (jnp.abs(values - old_values) > clip).astype(jnp.float32), mask)}


def adaptive_kl_coef(kl_coef: float, measured_kl: float, target: float, horizon: int,
                     batch_size: int) -> float:
  """Ziegler et al.'s proportional controller: error clipped to +-0.2, scaled by n / horizon."""
  error = min(max(measured_kl / target - 1.0, -0.2), 0.2)
  return kl_coef * (1.0 + error * batch_size / horizon)


def group_advantages(scores, group_size: int):
  """GRPO: (score - mean of its group) / (std of its group + 1e-4); groups are consecutive."""
  groups = scores.reshape(-1, group_size)
  mean = groups.mean(axis=1, keepdims=True)
  std = groups.std(axis=1, keepdims=True)
  return ((groups - mean) / (std + 1e-4)).reshape(scores.shape)

"""GAE against a naive reverse loop; PPO's clipped objectives on fixed inputs; KL rewards; GRPO."""

import jax.numpy as jnp
import numpy as np
import pytest

from llm.align.rl_losses import (adaptive_kl_coef, gae, group_advantages, kl_penalised_rewards,
                                 ppo_policy_loss, ppo_value_loss, whiten)


def naive_gae(rewards, values, mask, gamma, lam):
  advantages = np.zeros_like(rewards)
  for b in range(rewards.shape[0]):
    valid = [t for t in range(rewards.shape[1]) if mask[b, t]]
    following = 0.0
    for i in reversed(range(len(valid))):
      t = valid[i]
      next_value = values[b, valid[i + 1]] if i + 1 < len(valid) else 0.0
      delta = rewards[b, t] + gamma * next_value - values[b, t]
      following = delta + gamma * lam * following
      advantages[b, t] = following
  return advantages, (advantages + values) * mask


def test_gae_equals_a_naive_reverse_loop():
  rng = np.random.default_rng(0)
  rewards, values = rng.normal(size=(3, 7)), rng.normal(size=(3, 7))
  mask = np.array([[0, 0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], float)
  got = gae(jnp.asarray(rewards * mask), jnp.asarray(values), jnp.asarray(mask), 0.99, 0.95)
  want = naive_gae(rewards * mask, values, mask, 0.99, 0.95)
  np.testing.assert_allclose(got[0], want[0], atol=1e-5)
  np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_ppo_clipped_policy_objective_equals_its_formula():
  logp = jnp.array([[-1.0, -0.5, -2.0]])
  old = jnp.array([[-1.2, -1.0, -1.5]])
  adv = jnp.array([[1.0, 2.0, -1.0]])
  mask = jnp.array([[1.0, 1.0, 1.0]])
  loss, metrics = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
  ratio = np.exp([0.2, 0.5, -0.5])
  terms = np.minimum(ratio * [1, 2, -1], np.clip(ratio, 0.8, 1.2) * [1, 2, -1])
  assert float(loss) == pytest.approx(-terms.mean(), rel=1e-6)
  assert float(metrics["policy/clip_fraction"]) == 1.0  # exp(0.2), exp(0.5), exp(-0.5): all out


def test_ppo_value_loss_takes_the_larger_of_clipped_and_unclipped():
  loss, _ = ppo_value_loss(jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.0]]),
                           jnp.array([[2.0, 1.0]]), jnp.array([[1.0, 1.0]]), clip=0.2)
  # first: unclipped (1-2)^2 = 1, clipped (0.7-2)^2 = 1.69; second: 1 and 1
  assert float(loss) == pytest.approx(0.5 * (1.69 + 1.0) / 2)


def test_kl_rewards_put_the_score_on_the_last_response_token():
  mask = jnp.array([[0.0, 1.0, 1.0, 0.0]])
  rewards, kl = kl_penalised_rewards(jnp.array([3.0]), jnp.array([[0.0, -1.0, -2.0, 0.0]]),
                                     jnp.array([[0.0, -1.5, -1.0, 0.0]]), mask, kl_coef=0.1)
  np.testing.assert_allclose(kl, [[0.0, 0.5, -1.0, 0.0]])
  np.testing.assert_allclose(rewards, [[0.0, -0.05, 0.1 + 3.0, 0.0]], rtol=1e-6)


def test_adaptive_kl_and_group_advantages_and_whitening():
  assert adaptive_kl_coef(0.1, 12.0, 6.0, 10_000, 256) == pytest.approx(0.1 * (1 + 0.2 * 0.0256))
  adv = group_advantages(jnp.array([1.0, 3.0, 5.0, 5.0]), group_size=2)
  np.testing.assert_allclose(adv, [-1, 1, 0, 0], atol=1e-3)
  w = whiten(jnp.array([[1.0, 2.0, 3.0, 100.0]]), jnp.array([[1.0, 1.0, 1.0, 0.0]]))
  np.testing.assert_allclose(w[0, :3], [-1.2247, 0.0, 1.2247], atol=1e-3)
  assert float(w[0, 3]) == 0.0

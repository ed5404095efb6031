"""DPO against the published golden values of Tunix's test; IPO and Bradley-Terry formulas."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from llm.align.preference_losses import bradley_terry_loss, dpo_loss, sequence_logprobs


def _golden_inputs():
  np.random.seed(0)
  policy = np.random.normal(0, 5, (8, 4)).sum(-1)
  reference = np.random.normal(0, 5, (8, 4)).sum(-1)
  return (jnp.asarray(policy[:4]), jnp.asarray(policy[4:]), jnp.asarray(reference[:4]),
          jnp.asarray(reference[4:]))


@pytest.mark.parametrize("smoothing,golden", [(0.0, 0.753059), (0.3, 0.925447)])
def test_dpo_reproduces_published_golden_values(smoothing, golden):
  loss, _ = dpo_loss(*_golden_inputs(), beta=0.1, label_smoothing=smoothing)
  assert float(loss) == pytest.approx(golden, abs=1e-5)


def test_dpo_is_ln2_when_the_policy_is_the_reference():
  chosen, rejected = jnp.array([-3.0, -7.5]), jnp.array([-4.0, -1.0])
  loss, metrics = dpo_loss(chosen, rejected, chosen, rejected, beta=0.1)
  assert float(loss) == pytest.approx(math.log(2.0), abs=1e-7)
  assert float(metrics["rewards/margin"]) == 0.0


def test_ipo_and_reward_metrics_follow_their_formulas():
  pc, pr, rc, rr = (jnp.array(v) for v in ([-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.0], [-2.0, -2.0]))
  loss, metrics = dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo")
  h = np.array([1.0 - (-1.0), 0.0 - 1.0])
  assert float(loss) == pytest.approx(np.mean((h - 1.0) ** 2))
  assert float(metrics["rewards/accuracy"]) == 0.5
  np.testing.assert_allclose(metrics["rewards/chosen"], 0.5 * np.mean([1.0, 0.0]))
  with pytest.raises(ValueError, match="loss_type"):
    dpo_loss(pc, pr, rc, rr, loss_type="kto")


def test_bradley_terry_with_margin():
  loss, metrics = bradley_terry_loss(jnp.array([2.0, 0.0]), jnp.array([1.0, 1.0]),
                                     margin=jnp.array([0.5, 0.0]))
  expected = np.mean([np.log1p(np.exp(-0.5)), np.log1p(np.exp(1.0))])
  assert float(loss) == pytest.approx(expected, rel=1e-6) and float(metrics["accuracy"]) == 0.5


def test_sequence_logprobs_sum_only_masked_positions():
  logits = jnp.log(jnp.array([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]]))
  total = sequence_logprobs(logits, jnp.array([[0, 1, 1]]), jnp.array([[0.0, 1.0, 1.0]]))
  assert float(total[0]) == pytest.approx(np.log(0.1) + np.log(0.8), rel=1e-6)

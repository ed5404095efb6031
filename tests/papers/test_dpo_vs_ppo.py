"""The pure pieces of the DPO reproduction (experiments/papers/dpo_vs_ppo.py) against
hand-computed values: win rates with ties, the judge's two-order aggregation, the frontier gap."""

import math

import pytest

from experiments.papers.dpo_judge import two_order_verdict, win_rate
from experiments.papers.dpo_report import frontier_gaps


def test_win_rate_counts_ties_half():
  out = win_rate([1, 2, 3, 4], [0, 2, 5, 1])  # differences 1, 0, -2, 3
  assert (out["wins"], out["ties"], out["losses"], out["n"]) == (2, 1, 1, 4)
  assert out["win_rate"] == pytest.approx(2.5 / 4)
  assert out["se"] == pytest.approx(math.sqrt(0.625 * 0.375 / 4))


def test_two_order_verdict():
  # logit("A") - logit("B"): first with the policy as A, second with the policy as B.
  out = two_order_verdict([2.0, 1.0, -1.0, 0.5], [-1.0, 3.0, 2.0, 0.5])
  # summed log-odds for the policy: 3, -2, -3, 0 -> outcomes 1, 0, 0, 0.5
  assert out["win_rate"] == pytest.approx(1.5 / 4)
  assert out["se"] == pytest.approx(math.sqrt(0.375 * 0.625 / 4))
  assert (out["wins"], out["ties"], out["losses"]) == (1, 1, 2)
  # votes for the policy: first 1, 1, 0, 1; second 1, 0, 0, 0 -> items 1, .5, 0, .5
  assert out["win_rate_votes"] == pytest.approx(2.0 / 4)
  assert out["win_rate_policy_as_a"] == pytest.approx(0.75)
  assert out["win_rate_policy_as_b"] == pytest.approx(0.25)
  assert out["order_agreement"] == pytest.approx(0.5)
  assert out["picked_a_share"] == pytest.approx(6 / 8)
  assert out["mean_a_minus_b_logit"] == pytest.approx(7.0 / 8)


def test_position_bias_cancels():
  # A judge that always prefers "A" by 3 logits, and the policy by 1 logit on top of it.
  out = two_order_verdict([4.0, 4.0, 4.0], [2.0, 2.0, 2.0])
  assert out["win_rate"] == 1.0
  assert out["win_rate_votes"] == 0.5 and out["order_agreement"] == 0.0
  assert out["picked_a_share"] == 1.0


def test_frontier_gaps():
  sft, dpo = (0.0, 1.0, 0.1), [(1.0, 2.0, 0.1), (3.0, 1.5, 0.2)]
  gaps = frontier_gaps(sft, dpo, [(2.0, 1.8, 0.1), (5.0, 2.5, 0.3), (0.5, 1.2, 0.0)])
  # envelope 1 -> 2 between KL 0 and 1, then flat at 2 (the worse point at KL 3 is dominated)
  assert [g["dpo_frontier_score"] for g in gaps] == pytest.approx([2.0, 2.0, 1.5])
  assert [g["gap"] for g in gaps] == pytest.approx([0.2, -0.5, 0.3])
  assert [g["se"] for g in gaps] == pytest.approx([math.hypot(0.1, 0.1), math.hypot(0.3, 0.2),
                                                   0.1])

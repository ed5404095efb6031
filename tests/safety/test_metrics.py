"""Guard metrics against counts done by hand and a pairwise AUROC."""

import numpy as np

from llm.safety.metrics import guard_metrics


def test_guard_metrics_match_pairwise_auroc_and_counted_rates():
  rng = np.random.default_rng(1)
  unsafe = rng.random(60) < 0.5
  scores = np.where(unsafe, rng.normal(0.7, 0.2, 60), rng.normal(0.4, 0.2, 60))
  m = guard_metrics(scores, unsafe, 0.55)
  pos, neg = scores[unsafe], scores[~unsafe]
  pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
  assert abs(m["auroc"] - pairwise) < 1e-12
  tp = np.sum((scores >= 0.55) & unsafe)
  fp = np.sum((scores >= 0.55) & ~unsafe)
  fn = np.sum((scores < 0.55) & unsafe)
  assert abs(m["f1"] - 2 * tp / (2 * tp + fp + fn)) < 1e-12
  assert abs(m["false_positive_rate"] - fp / (~unsafe).sum()) < 1e-12
  assert abs(m["recall"] - tp / unsafe.sum()) < 1e-12
  assert guard_metrics(scores[~unsafe], unsafe[~unsafe], 0.5)["auroc"] is None

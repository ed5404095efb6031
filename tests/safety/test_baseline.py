"""The TF-IDF baseline on held-out replies, and thresholds for a false-positive target."""

import numpy as np

from llm.safety.baseline import fit_baseline, guard_text, threshold_for_fpr
from llm.safety.data import scored_responses, split_of


def test_threshold_meets_the_false_positive_target_and_is_the_lowest_that_does():
  rng = np.random.default_rng(0)
  scores = rng.random(200)
  unsafe = rng.random(200) < 0.4
  for target in (0.0, 0.05, 0.2, 1.0):
    t = threshold_for_fpr(scores, unsafe, target)
    fpr = lambda th: np.mean(scores[~unsafe] >= th)  # noqa: E731
    assert fpr(t) <= target + 1e-12
    lower = [s for s in np.unique(scores) if s < t]  # any lower candidate breaks the target
    assert not lower or fpr(max(lower)) > target


def test_the_baseline_separates_held_out_replies():
  from sklearn.metrics import roc_auc_score
  rows = scored_responses()
  train = [r for r in rows if split_of(r.prompt) == "train"]
  test = [r for r in rows if split_of(r.prompt) == "test"]
  model = fit_baseline([guard_text(r.prompt, r.response) for r in train],
                       [r.unsafe for r in train])
  scores = model.predict_proba([guard_text(r.prompt, r.response) for r in test])[:, 1]
  auroc = roc_auc_score([r.unsafe for r in test], scores)
  print(f"baseline AUROC on {len(test)} held-out replies: {auroc:.3f}")
  assert auroc > 0.7

"""How well a guard separates unsafe from safe: AUROC, and at a chosen threshold the F1, the
recall of unsafe examples and the false-positive rate on safe ones."""

import numpy as np


def guard_metrics(scores, unsafe, threshold: float) -> dict:
  """scores: P(unsafe) per example; unsafe: the labels; flagged means score >= threshold."""
  from sklearn.metrics import f1_score, roc_auc_score
  scores, unsafe = np.asarray(scores, np.float64), np.asarray(unsafe, bool)
  flagged = scores >= threshold
  both = unsafe.any() and (~unsafe).any()
  return {"examples": int(len(scores)), "unsafe": int(unsafe.sum()),
          "auroc": float(roc_auc_score(unsafe, scores)) if both else None,
          "threshold": float(threshold),
          "f1": float(f1_score(unsafe, flagged, zero_division=0.0)),
          "recall": float(flagged[unsafe].mean()) if unsafe.any() else None,
          "false_positive_rate": float(flagged[~unsafe].mean()) if (~unsafe).any() else None}

"""Calibrating the guard on the validation split, separately for prompts alone and for prompts
with replies (their score scales differ): Platt scaling of the logit, P = sigmoid(a * logit +
b), fitted by logistic regression; then per kind the threshold for its false-positive target
(looser for replies: a flagged reply costs a redraw, a flagged prompt a refusal).
The expected calibration error says how well probabilities match frequencies."""

import numpy as np

from llm.safety.baseline import threshold_for_fpr

KINDS = ("prompt", "response")


def fit_platt(logits, unsafe) -> tuple[float, float]:
  """(a, b) minimising the binary cross-entropy of sigmoid(a * logit + b) (almost no
  regularisation)."""
  from sklearn.linear_model import LogisticRegression
  model = LogisticRegression(C=1e6, max_iter=1000)
  model.fit(np.asarray(logits, np.float64)[:, None], np.asarray(unsafe, bool))
  return float(model.coef_[0, 0]), float(model.intercept_[0])


def platt(logits, a: float, b: float) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-(a * np.asarray(logits, np.float64) + b)))


def calibrate(logits: np.ndarray, kinds: np.ndarray, unsafe: np.ndarray,
              target_fpr: dict) -> dict:
  """{kind: {"a", "b", "threshold"}} from validation logits, kinds and labels; the threshold
  of each kind meets its false-positive target (target_fpr[kind])."""
  out = {}
  for kind in KINDS:
    mask = kinds == kind
    a, b = fit_platt(logits[mask], unsafe[mask])
    out[kind] = {"a": a, "b": b, "threshold": threshold_for_fpr(
        platt(logits[mask], a, b), unsafe[mask], target_fpr[kind])}
  return out


def calibrated(logits: np.ndarray, kinds: np.ndarray, calibration: dict) -> np.ndarray:
  """P(unsafe) per example with its kind's Platt scaling."""
  out = np.zeros(len(logits), np.float64)
  for kind, c in calibration.items():
    mask = kinds == kind
    out[mask] = platt(logits[mask], c["a"], c["b"])
  return out


def expected_calibration_error(probabilities, unsafe, bins: int = 10) -> float:
  """Sum over equal-width probability bins of (bin share) * |mean P - share unsafe|."""
  p, y = np.asarray(probabilities, np.float64), np.asarray(unsafe, np.float64)
  which = np.minimum((p * bins).astype(int), bins - 1)
  return float(sum(np.mean(which == k) * abs(p[which == k].mean() - y[which == k].mean())
                   for k in range(bins) if np.any(which == k)))

"""Platt scaling against a direct Newton fit, per-kind thresholds and the calibration error
against hand counts."""

import numpy as np

from llm.safety.calibration import (calibrate, calibrated, expected_calibration_error,
                                    fit_platt, platt)


def _newton_platt(x, y, steps=50):
  a, b = 0.0, 0.0  # from p = 1/2 everywhere Newton's steps are well defined
  for _ in range(steps):
    p = 1 / (1 + np.exp(-(a * x + b)))
    g = np.array([np.sum((p - y) * x), np.sum(p - y)])
    w = p * (1 - p)
    h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
    a, b = np.array([a, b]) - np.linalg.solve(h, g)
  return a, b


def test_platt_scaling_matches_a_newton_fit_of_the_cross_entropy():
  rng = np.random.default_rng(0)
  y = rng.random(400) < 0.4
  x = np.where(y, 2.0, -1.0) * 3 + rng.normal(0, 4, 400)  # overconfident logits
  a, b = fit_platt(x, y)
  np.testing.assert_allclose([a, b], _newton_platt(x, y.astype(float)), rtol=1e-3, atol=1e-4)
  assert 0 < a < 1  # shrinks the overconfident logits


def test_each_kind_gets_its_own_scaling_and_threshold():
  rng = np.random.default_rng(1)
  kinds = np.array(["prompt"] * 300 + ["response"] * 300)
  y = rng.random(600) < 0.5
  logits = np.where(y, 1.0, -1.0) * np.where(kinds == "prompt", 10.0, 1.0) + rng.normal(0, 1, 600)
  c = calibrate(logits, kinds, y, {"prompt": 0.05, "response": 0.1})
  assert c["prompt"]["a"] < c["response"]["a"]
  p = calibrated(logits, kinds, c)
  for kind, target in (("prompt", 0.05), ("response", 0.1)):
    mask = kinds == kind
    np.testing.assert_allclose(p[mask], platt(logits[mask], c[kind]["a"], c[kind]["b"]))
    assert np.mean(p[mask & ~y] >= c[kind]["threshold"]) <= target


def test_expected_calibration_error_by_hand():
  p = np.array([0.05, 0.15, 0.95, 0.95])
  y = np.array([0, 1, 1, 0])
  # bins: [0,.1): p .05 y 0 -> 0.05; [.1,.2): .15 vs 1 -> .85; [.9,1]: .95 vs .5 -> .45
  assert abs(expected_calibration_error(p, y) - (0.25 * 0.05 + 0.25 * 0.85 + 0.5 * 0.45)) < 1e-12

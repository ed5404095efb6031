"""Backdoor scan scores against naive references: an eigendecomposition of the covariance, loop
statistics, a plain Lloyd's loop, scipy's Mahalanobis distance, and planted outliers found."""

import statistics

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis

from llm.safety.outliers import (MadDetector, MahalanobisDetector, activation_clustering_scores,
                                 density_scores,                                 outlier_threshold,
                                 flag_outliers, ledoit_wolf_shrinkage, precision_recall,
                                 robust_z, spectral_projection, spectral_signature_scores,
                                 two_means)


def planted_set(seed=0, n=300, d=32, planted=9, shift=10.0):
  rng = np.random.default_rng(seed)
  reps = rng.normal(size=(n + planted, d))
  direction = rng.normal(size=d)
  reps[n:] += shift * direction / np.linalg.norm(direction)
  return reps, np.arange(n + planted) >= n


def naive_robust_z(values):
  median = statistics.median(values)
  mad = statistics.median([abs(v - median) for v in values])
  return [abs(v - median) / (1.4826 * mad) for v in values]


def naive_lloyd(points, centres, iters=100):
  for _ in range(iters):
    labels = np.array([int(np.sum((p - centres[1]) ** 2) < np.sum((p - centres[0]) ** 2))
                       for p in points])
    centres = np.array([points[labels == k].mean(axis=0) for k in (0, 1)])
  return labels, centres


def inertia(points, labels, centres):
  return sum(float(np.sum((p - centres[k]) ** 2)) for p, k in zip(points, labels))


def test_spectral_scores_match_the_top_eigenvector_of_the_covariance():
  reps, planted = planted_set(seed=1, n=60, d=8, planted=3)
  centred = reps - reps.mean(axis=0)
  top = np.linalg.eigh(centred.T @ centred)[1][:, -1]
  expected = np.array([float(row @ top) ** 2 for row in centred])
  np.testing.assert_allclose(spectral_signature_scores(reps), expected, rtol=1e-9)
  projection = spectral_projection(reps)
  np.testing.assert_allclose(np.abs(projection), np.sqrt(expected), rtol=1e-9)
  assert (projection[planted] > 0).all()  # signed towards the planted tail


def test_robust_z_matches_loop_statistics_and_handles_a_zero_mad():
  values = list(np.random.default_rng(2).standard_t(3, size=41))
  np.testing.assert_allclose(robust_z(values), naive_robust_z(values), rtol=1e-12)
  mostly_equal = [1.0] * 7 + [2.0, 5.0]  # MAD 0: the mean absolute deviation scales instead
  mean_ad = sum(abs(v - 1.0) for v in mostly_equal) / len(mostly_equal)
  np.testing.assert_allclose(robust_z(mostly_equal),
                             [abs(v - 1.0) / (1.2533 * mean_ad) for v in mostly_equal])
  assert (robust_z([3.0] * 5) == 0).all()


def test_flagging_is_one_sided_by_default():
  values = np.concatenate([np.linspace(-2.0, 2.0, 51), [-40.0, 40.0]])  # MAD 1: z below 1.4
  assert np.flatnonzero(flag_outliers(values)).tolist() == [52]
  assert np.flatnonzero(flag_outliers(values, one_sided=False)).tolist() == [51, 52]
  z = naive_robust_z(list(values))
  assert flag_outliers(values, z_threshold=2.0, one_sided=False).tolist() == [v > 2.0 for v in z]


def test_two_means_finds_a_small_blob_exactly_and_agrees_with_a_plain_lloyd_loop():
  rng = np.random.default_rng(4)
  points = np.concatenate([rng.normal(0, 1, (95, 3)), rng.normal(12, 1, (5, 3))])
  labels, centres = two_means(points, seed=0)
  assert np.flatnonzero(labels).tolist() == list(range(95, 100))  # label 1: the small cluster
  naive_labels, naive_centres = naive_lloyd(points, points[[0, 99]])
  assert np.array_equal(labels, naive_labels)
  np.testing.assert_allclose(centres, naive_centres, rtol=1e-12)
  assert two_means(points, seed=7)[0].tolist() == labels.tolist()


def test_two_means_is_a_lloyd_fixed_point_at_least_as_good_as_a_plain_start():
  points = np.random.default_rng(5).normal(size=(80, 4))  # no real clusters
  labels, centres = two_means(points, seed=3)
  assert labels.sum() <= len(labels) - labels.sum()
  again, _ = naive_lloyd(points, centres, iters=1)
  assert np.array_equal(again, labels)
  for k in (0, 1):
    np.testing.assert_allclose(centres[k], points[labels == k].mean(axis=0), rtol=1e-12)
  naive = naive_lloyd(points, points[[0, 1]])
  assert inertia(points, labels, centres) <= inertia(points, *naive) + 1e-9
  same = two_means(points, seed=3)
  assert np.array_equal(same[0], labels) and np.array_equal(same[1], centres)


def test_clustering_margin_is_positive_exactly_on_the_small_cluster():
  reps, planted = planted_set(seed=6, n=120, d=16, planted=6)
  scores = activation_clustering_scores(reps, dims=4)
  assert ((scores > 0) == planted).all()
  with pytest.raises(ValueError):
    two_means(np.ones((1, 3)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_outliers_are_found_by_robust_z(seed):
  reps, planted = planted_set(seed=seed)
  for scores in (spectral_projection(reps), activation_clustering_scores(reps)):
    found = precision_recall(flag_outliers(scores), planted)
    assert found["recall"] == 1.0 and found["precision"] >= 0.9, found


def test_mad_detector_matches_a_per_feature_loop():
  rng = np.random.default_rng(7)
  clean, new = rng.laplace(size=(51, 6)), rng.laplace(size=(4, 6)) * 3
  clean[:, 5] = 2.0  # a constant feature: its scale is floored
  detector = MadDetector().fit(clean, min_scale_ratio=0.01)
  scales = []
  for j in range(5):
    column = list(clean[:, j])
    median = statistics.median(column)
    scales.append(1.4826 * statistics.median([abs(v - median) for v in column]))
  scales.append(0.01 * statistics.median(scales))
  for row, score in zip(new, detector.score(new)):
    zs = [((row[j] - statistics.median(list(clean[:, j]))) / scales[j]) ** 2 for j in range(6)]
    assert score == pytest.approx(sum(zs) / 6, rel=1e-12)
  assert detector.score(np.tile(np.median(clean, axis=0), (2, 1))).tolist() == [0.0, 0.0]


def test_mahalanobis_detector_matches_scipy_and_ledoit_wolf():
  from sklearn.covariance import ledoit_wolf
  rng = np.random.default_rng(8)
  clean = rng.normal(size=(20, 30)) @ rng.normal(size=(30, 30))  # n < d: S alone is singular
  new = rng.normal(size=(5, 30))
  detector = MahalanobisDetector().fit(clean)
  lw_covariance, lw_shrinkage = ledoit_wolf(clean)
  assert detector.shrinkage == pytest.approx(lw_shrinkage, rel=1e-9)
  np.testing.assert_allclose(detector.covariance, lw_covariance, rtol=1e-9, atol=1e-9)
  inverse = np.linalg.inv(lw_covariance)
  expected = [mahalanobis(row, clean.mean(axis=0), inverse) for row in new]
  np.testing.assert_allclose(detector.score(new), expected, rtol=1e-6)
  ridge = MahalanobisDetector().fit(clean, shrinkage=0.5)
  centred = clean - clean.mean(axis=0)
  sample = centred.T @ centred / len(clean)
  manual = 0.5 * sample + 0.5 * np.trace(sample) / 30 * np.eye(30)
  expected = [mahalanobis(row, clean.mean(axis=0), np.linalg.inv(manual)) for row in new]
  np.testing.assert_allclose(ridge.score(new), expected, rtol=1e-6)
  assert ledoit_wolf_shrinkage(centred) == pytest.approx(lw_shrinkage, rel=1e-9)


def test_detectors_score_shifted_inputs_above_clean_ones():
  rng = np.random.default_rng(9)
  clean, held_out = rng.normal(size=(200, 16)), rng.normal(size=(50, 16))
  shifted = rng.normal(size=(50, 16)) + 2.0
  for detector in (MadDetector().fit(clean), MahalanobisDetector().fit(clean)):
    assert detector.score(shifted).min() > detector.score(held_out).max()


def test_precision_recall_counts_and_undefined_cases():
  flagged = np.array([1, 1, 0, 1, 0, 0], bool)
  planted = np.array([1, 0, 1, 1, 0, 0], bool)
  assert precision_recall(flagged, planted) == {
      "precision": 2 / 3, "recall": 2 / 3, "flagged": 3, "planted": 3, "true_positives": 2}
  none = precision_recall(np.zeros(6, bool), planted)
  assert none["precision"] is None and none["recall"] == 0.0
  assert precision_recall(flagged, np.zeros(6, bool))["recall"] is None


def test_the_outlier_threshold_separates_exactly_what_flag_outliers_flags():
  rng = np.random.default_rng(3)
  scores = np.concatenate([rng.normal(size=200), rng.normal(8.0, 1.0, size=6)])
  t = outlier_threshold(scores, 3.5)
  np.testing.assert_array_equal(scores > t, flag_outliers(scores, 3.5))
  assert t == pytest.approx(statistics.median(scores) + 3.5 * 1.4826 * statistics.median(
      [abs(x - statistics.median(scores)) for x in scores]))


def test_density_is_the_distance_to_the_kth_other_row_by_brute_force():
  rng = np.random.default_rng(4)
  reps = rng.normal(size=(60, 5))
  reps[:6] = reps[0] + 0.01 * rng.normal(size=(6, 5))  # a tight planted clump
  got = density_scores(reps, neighbours=3)
  for i in range(60):
    others = sorted(float(np.linalg.norm(reps[i] - reps[j])) for j in range(60) if j != i)
    assert got[i] == pytest.approx(-np.log(others[2]), rel=1e-9)
  assert flag_outliers(got)[:6].all() and not flag_outliers(got)[6:].any()

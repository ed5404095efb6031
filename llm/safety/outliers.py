"""Backdoor scans over activations: poisoned training examples sit apart from the clean ones.

Scores per example from `reps [n, d]` (one activation vector a row): the spectral signature
(Tran et al. 2018), activation clustering (Chen et al. 2018), robust z-scores to flag the
outliers, and detectors calibrated on clean activations to score new inputs."""

import numpy as np

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
MEAN_AD_TO_SIGMA = 1.2533  # the same for the mean absolute deviation: sqrt(pi / 2)


def _rows(reps) -> np.ndarray:
  reps = np.asarray(reps, np.float64)
  return reps[:, None] if reps.ndim == 1 else reps


def _centred(reps) -> np.ndarray:
  reps = _rows(reps)
  return reps - reps.mean(axis=0)


def spectral_projection(reps) -> np.ndarray:
  """Each centred row projected on the top right singular vector, signed so that the longer
  tail (positive third moment) is positive: a planted minority lands on the positive side."""
  centred = _centred(reps)
  top = np.linalg.svd(centred, full_matrices=False)[2][0]
  projection = centred @ top
  return projection if np.sum(projection ** 3) >= 0 else -projection


def spectral_signature_scores(reps) -> np.ndarray:
  """Tran et al.: the squared projection of each centred row on the top singular vector.

  Rank by it (the paper removes the top 1.5x the expected poisoned share). To flag by robust
  z, use `spectral_projection`: the squared score is chi-square shaped, and a robust z over it
  flags about a tenth of the clean rows."""
  return spectral_projection(reps) ** 2


def principal_components(reps, dims: int = 10) -> np.ndarray:
  """Centred rows projected on the top `dims` principal components (fewer when n - 1 or d is
  smaller; at least one)."""
  centred = _centred(reps)
  dims = max(1, min(dims, len(centred) - 1, centred.shape[1]))
  return centred @ np.linalg.svd(centred, full_matrices=False)[2][:dims].T


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
  return ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)


def _plus_plus_start(points: np.ndarray, rng) -> np.ndarray:
  """k-means++ for two centres: one row at random, the other drawn in proportion to its
  squared distance from the first."""
  first = points[rng.integers(len(points))]
  weights = ((points - first) ** 2).sum(axis=1)
  if weights.sum() == 0:  # every row the same: any second start will do
    return np.stack([first, first])
  return np.stack([first, points[rng.choice(len(points), p=weights / weights.sum())]])


def _lloyd(points: np.ndarray, centres: np.ndarray, max_iter: int):
  labels = None
  for _ in range(max_iter):
    distances = _squared_distances(points, centres)
    new = distances.argmin(axis=1)
    if not (new == 0).any() or not (new == 1).any():  # an empty cluster: take the farthest row
      new[distances.min(axis=1).argmax()] = 1 - new[0]
    if labels is not None and np.array_equal(new, labels):
      break
    labels = new
    centres = np.stack([points[labels == k].mean(axis=0) for k in (0, 1)])
  inertia = float(_squared_distances(points, centres)[np.arange(len(points)), labels].sum())
  return labels, centres, inertia


def two_means(points, seed: int = 0, n_init: int = 10, max_iter: int = 100):
  """2-means by Lloyd's algorithm from `n_init` seeded k-means++ starts, keeping the lowest
  inertia. Returns (labels [n] int, centres [2, d]) with label 1 the smaller cluster."""
  points = _rows(points)
  if len(points) < 2:
    raise ValueError("two_means needs at least two rows")
  rng = np.random.default_rng(seed)
  best = None
  for _ in range(n_init):
    found = _lloyd(points, _plus_plus_start(points, rng), max_iter)
    if best is None or found[2] < best[2]:
      best = found
  labels, centres, _ = best
  if (labels == 1).sum() > (labels == 0).sum():
    labels, centres = 1 - labels, centres[::-1]
  return labels, centres


def activation_clustering_scores(reps, dims: int = 10, seed: int = 0) -> np.ndarray:
  """Chen et al.: 2-means over the top `dims` principal components. The score is the margin
  `distance to the larger centre - distance to the smaller centre`: positive exactly for the
  members of the smaller cluster, and larger the deeper inside it a row sits."""
  points = principal_components(reps, dims)
  _, centres = two_means(points, seed)
  distances = np.sqrt(_squared_distances(points, centres))
  return distances[:, 0] - distances[:, 1]


def density_scores(reps, neighbours: int = 10) -> np.ndarray:
  """-log of each row's distance to its `neighbours`-th nearest other row: high where rows
  crowd together. Planted examples share one reply, so their activations sit in a cluster
  far tighter than clean data's; keep `neighbours` below the smallest share worth finding."""
  from sklearn.neighbors import NearestNeighbors
  reps = _rows(reps)
  k = min(neighbours, len(reps) - 1)
  distances = NearestNeighbors(n_neighbors=k + 1).fit(reps).kneighbors(reps)[0][:, k]
  return -np.log(distances + np.finfo(np.float64).tiny)


def _centre_and_scale(values: np.ndarray, axis=None):
  """The median and a robust standard deviation along `axis`: 1.4826 * MAD, or where the MAD
  is 0 (over half the values equal) 1.2533 * the mean absolute deviation from the median, or
  where that is 0 too (all equal) the smallest positive float, so equal values score 0."""
  median = np.median(values, axis=axis, keepdims=True)
  deviation = np.abs(values - median)
  scale = MAD_TO_SIGMA * np.median(deviation, axis=axis, keepdims=True)
  fallback = MEAN_AD_TO_SIGMA * deviation.mean(axis=axis, keepdims=True)
  scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, np.finfo(np.float64).tiny))
  return median, scale


def robust_z(scores) -> np.ndarray:
  """|x - median| / (1.4826 * MAD) per score (see `_centre_and_scale` for MAD == 0)."""
  scores = np.asarray(scores, np.float64)
  median, scale = _centre_and_scale(scores)
  return np.abs(scores - median) / scale


def flag_outliers(scores, z_threshold: float = 3.5, one_sided: bool = True) -> np.ndarray:
  """Rows whose robust z exceeds `z_threshold`. One-sided by default: only scores above the
  median count, since every score here is larger for the more suspicious rows."""
  scores = np.asarray(scores, np.float64)
  flagged = robust_z(scores) > z_threshold
  return flagged & (scores > np.median(scores)) if one_sided else flagged


def outlier_threshold(scores, z_threshold: float = 3.5) -> float:
  """The score above which `flag_outliers` (one-sided) flags: median + z * robust scale."""
  median, scale = _centre_and_scale(np.asarray(scores, np.float64))
  return float(median.item() + z_threshold * scale.item())


class MadDetector:
  """Per-feature median and robust scale of clean activations. `score` is the mean over
  features of the squared robust z: a shift spread over many features adds up in it, where
  the largest single z would only see the one most moved feature.

  A feature (near) constant on clean rows would give any later change an unbounded z, so each
  scale is at least `min_scale_ratio` times the median of the positive feature scales."""

  def fit(self, clean_reps, min_scale_ratio: float = 1e-3) -> "MadDetector":
    self.median, scale = (a[0] for a in _centre_and_scale(_rows(clean_reps), axis=0))
    positive = scale[scale > np.finfo(np.float64).tiny]
    floor = min_scale_ratio * (np.median(positive) if positive.size else 1.0)
    self.scale = np.maximum(scale, floor)
    return self

  def feature_z(self, reps) -> np.ndarray:
    """Signed robust z per row and feature, [n, d]."""
    return (_rows(reps) - self.median) / self.scale

  def score(self, reps) -> np.ndarray:
    return (self.feature_z(reps) ** 2).mean(axis=1)


def ledoit_wolf_shrinkage(centred: np.ndarray) -> float:
  """The Ledoit-Wolf weight on the scaled identity for the covariance of centred rows."""
  n, d = centred.shape
  squares = centred ** 2
  variances = squares.sum(axis=0) / n
  mu = variances.sum() / d
  delta_sum = np.sum((centred.T @ centred) ** 2) / n ** 2
  beta = (np.sum(squares.T @ squares) / n - delta_sum) / (d * n)
  delta = (delta_sum - 2 * mu * variances.sum() + d * mu ** 2) / d
  return 0.0 if beta <= 0 or delta <= 0 else float(min(beta, delta) / delta)


class MahalanobisDetector:
  """Mean and shrunk covariance of clean activations; `score` is the Mahalanobis distance.

  The covariance is (1 - a) S + a mu I, with S the maximum-likelihood covariance and mu its
  mean variance, so it is invertible when n < d; `a` is the Ledoit-Wolf weight unless
  `shrinkage` gives it."""

  def fit(self, clean_reps, shrinkage: float | None = None) -> "MahalanobisDetector":
    clean = _rows(clean_reps)
    self.mean = clean.mean(axis=0)
    centred = clean - self.mean
    empirical = centred.T @ centred / len(clean)
    mu = max(np.trace(empirical) / empirical.shape[0], np.finfo(np.float64).tiny)
    self.shrinkage = ledoit_wolf_shrinkage(centred) if shrinkage is None else float(shrinkage)
    self.covariance = ((1 - self.shrinkage) * empirical
                       + self.shrinkage * mu * np.eye(empirical.shape[0]))
    self.precision = np.linalg.inv(self.covariance)
    return self

  def score(self, reps) -> np.ndarray:
    centred = _rows(reps) - self.mean
    squared = np.einsum("nd,de,ne->n", centred, self.precision, centred)
    return np.sqrt(np.maximum(squared, 0.0))


def precision_recall(flagged, planted) -> dict:
  """How the flagged rows match the planted ones. Precision is None when nothing is flagged
  and recall None when nothing is planted (undefined, as in `guard_metrics`)."""
  flagged, planted = np.asarray(flagged, bool), np.asarray(planted, bool)
  true_positives = int((flagged & planted).sum())
  return {"precision": true_positives / int(flagged.sum()) if flagged.any() else None,
          "recall": true_positives / int(planted.sum()) if planted.any() else None,
          "flagged": int(flagged.sum()), "planted": int(planted.sum()),
          "true_positives": true_positives}

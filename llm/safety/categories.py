"""Harm categories of what the guard flags: a multinomial logistic regression (scikit-learn)
on the guard's own last-token features, fitted on the unsafe training examples that carry a
category (Do-Not-Answer's risk areas for prompts, pyrit's harm categories for replies;
HarmBench prompts have none). Kept as plain arrays, so the guard applies it with numpy."""

import numpy as np

UNLABELLED = ("benign", "harmbench")


def fit_categories(features, labels: list[str], seed: int = 0) -> dict:
  """{"classes", "mean", "scale", "coef", "intercept"} (JSON-ready lists)."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.preprocessing import StandardScaler
  features = np.asarray(features, np.float64)
  scaler = StandardScaler().fit(features)
  model = LogisticRegression(C=1.0, max_iter=3000, random_state=seed)
  model.fit(scaler.transform(features), labels)
  return {"classes": [str(c) for c in model.classes_], "mean": scaler.mean_.tolist(),
          "scale": scaler.scale_.tolist(), "coef": model.coef_.tolist(),
          "intercept": model.intercept_.tolist()}


def category_probabilities(probe: dict, features) -> np.ndarray:
  """[n, classes]: softmax of the probe's logits."""
  x = (np.asarray(features, np.float64) - np.asarray(probe["mean"])) / np.asarray(probe["scale"])
  logits = x @ np.asarray(probe["coef"]).T + np.asarray(probe["intercept"])
  logits -= logits.max(axis=1, keepdims=True)
  p = np.exp(logits)
  return p / p.sum(axis=1, keepdims=True)


def top_categories(probe: dict, features) -> list[str]:
  return [probe["classes"][i] for i in category_probabilities(probe, features).argmax(axis=1)]


def labelled(examples: list) -> list:
  """The unsafe examples that carry a category."""
  return [e for e in examples if e.unsafe and e.category not in UNLABELLED]

"""The guard's baseline: TF-IDF features (word 1-2 grams and character 2-5 grams) and a
logistic regression, from scikit-learn. Texts are a prompt, or a prompt and its reply."""

import numpy as np


def guard_text(prompt: str, response: str | None = None) -> str:
  """What a classifier reads: the prompt alone, or the prompt and the reply, marked."""
  return prompt if response is None else f"USER: {prompt}\nASSISTANT: {response}"


def fit_baseline(texts: list[str], unsafe: list[bool], seed: int = 0):
  """A fitted scikit-learn pipeline; `.predict_proba(texts)[:, 1]` is P(unsafe)."""
  from sklearn.feature_extraction.text import TfidfVectorizer
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline, make_union
  features = make_union(
      TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
      TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True))
  model = make_pipeline(features, LogisticRegression(C=4.0, max_iter=2000,
                                                     class_weight="balanced",
                                                     random_state=seed))
  return model.fit(texts, np.asarray(unsafe, bool))


def threshold_for_fpr(scores, unsafe, target_fpr: float) -> float:
  """The lowest threshold t whose false-positive rate (share of safe examples with score >= t)
  is at most `target_fpr`; flag an example as unsafe when its score >= t."""
  scores, unsafe = np.asarray(scores, np.float64), np.asarray(unsafe, bool)
  safe = np.sort(scores[~unsafe])[::-1]  # descending
  allowed = int(np.floor(target_fpr * len(safe)))  # safe examples that may score >= t
  if allowed >= len(safe):  # no safe examples, or a target every threshold meets
    return float(scores.min())
  return float(np.nextafter(safe[allowed], np.inf))  # just above the first one not allowed

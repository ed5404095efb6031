"""The category probe applied with numpy equals scikit-learn's own predictions."""

import numpy as np

from llm.safety.categories import category_probabilities, fit_categories, top_categories


def test_the_numpy_probe_equals_scikit_learns_predict_proba():
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  rng = np.random.default_rng(0)
  centres = rng.normal(0, 3, size=(3, 8))
  labels = np.repeat(["hate", "privacy", "violence"], 40)
  features = centres[np.repeat(np.arange(3), 40)] + rng.normal(size=(120, 8)) * 2 + 100
  probe = fit_categories(features, list(labels))
  reference = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000,
                                                                 random_state=0))
  reference.fit(features, labels)
  np.testing.assert_allclose(category_probabilities(probe, features),
                             reference.predict_proba(features), rtol=1e-6, atol=1e-9)
  assert top_categories(probe, features) == list(reference.predict(features))
  assert np.mean(np.array(top_categories(probe, features)) == labels) > 0.8

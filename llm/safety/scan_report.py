"""A backdoor scan's report: per method the rows flagged above its threshold (and, when the
planted rows are known, the precision, recall and AUROC), as JSON and as one histogram each."""

import os
import tempfile

import numpy as np

from llm.io import write_json_atomic
from llm.safety.outliers import precision_recall


def _jsonable(value):
  """json.dumps' fallback for numpy scalars and arrays in `extra`."""
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _auroc(scores: np.ndarray, planted: np.ndarray) -> float | None:
  if planted.all() or not planted.any():
    return None
  from sklearn.metrics import roc_auc_score
  return float(roc_auc_score(planted, scores))


def method_summary(scores, threshold: float, planted=None) -> dict:
  """Counts and score statistics of one method; a row is flagged when its score > threshold."""
  scores = np.asarray(scores, np.float64)
  flagged = scores > threshold
  summary = {"examples": int(len(scores)), "threshold": float(threshold),
             "flagged": int(flagged.sum()), "score_min": float(scores.min()),
             "score_median": float(np.median(scores)), "score_max": float(scores.max())}
  if planted is not None:
    planted = np.asarray(planted, bool)
    summary.update(precision_recall(flagged, planted), auroc=_auroc(scores, planted))
  return summary


def plot_scan(path: str, scores_by_method: dict, thresholds: dict, planted=None) -> str:
  """One histogram per method with its threshold as a vertical line (planted rows stacked in
  their own colour when known), written to a temporary PNG beside `path`, then renamed."""
  import matplotlib  # a plotting backend is only needed here
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  columns = min(3, len(scores_by_method))
  rows = -(-len(scores_by_method) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
  for ax in axes.flat[len(scores_by_method):]:
    ax.set_visible(False)
  for ax, (method, scores) in zip(axes.flat, scores_by_method.items()):
    scores = np.asarray(scores, np.float64)
    if planted is None:
      ax.hist(scores, bins=40, color="tab:blue")
    else:
      mask = np.asarray(planted, bool)
      ax.hist([scores[~mask], scores[mask]], bins=40, stacked=True,
              color=["tab:blue", "tab:red"], label=["clean", "planted"])
      ax.legend(fontsize=8)
    ax.axvline(thresholds[method], color="black", linestyle="--")
    flagged = int((scores > thresholds[method]).sum())
    ax.set(title=f"{method}: {flagged} flagged", xlabel="score", ylabel="examples")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
  os.close(fd)
  try:
    fig.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def write_scan_report(path_json: str, path_png: str, scores_by_method: dict[str, np.ndarray],
                      thresholds: dict[str, float], extra: dict, planted=None) -> dict:
  """Writes the JSON report (`extra`'s keys at its top level beside "methods", and "planted"
  when given) and the PNG; returns the report. A row is flagged when its score > threshold."""
  if not scores_by_method:
    raise ValueError("no scores to report")
  missing = sorted(set(scores_by_method) - set(thresholds))
  if missing:
    raise ValueError(f"no threshold for {missing}")
  clash = {"methods", "planted"} & set(extra)
  if clash:
    raise ValueError(f"extra may not hold the report's own keys {sorted(clash)}")
  report = dict(extra)
  report["methods"] = {method: method_summary(scores, thresholds[method], planted)
                       for method, scores in scores_by_method.items()}
  if planted is not None:
    report["planted"] = int(np.asarray(planted, bool).sum())
  write_json_atomic(path_json, report, indent=2, default=_jsonable)
  plot_scan(path_png, scores_by_method, thresholds, planted)
  return report

"""PNG curves of an RL run: the mean reward-model score and the KL to the reference per rollout."""

import numpy as np

from llm.io import save_figure_atomic


def plot_rollouts(history: list[dict], path: str, *, max_kl: float = 0.0,
                  kl_target: float = 0.0, title: str = "", window: int = 5) -> str:
  """Writes a two-panel PNG (score; KL with its bound and target) to `path`; returns it."""
  import matplotlib  # a plotting backend is only needed here
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rollouts = list(range(1, len(history) + 1))
  fig, (score_ax, kl_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
  scores = [h["score"] for h in history]
  score_ax.plot(rollouts, scores, marker=".", color="tab:blue", alpha=0.5, label="per rollout")
  if len(scores) >= window:
    smooth = np.convolve(scores, np.ones(window) / window, mode="valid")
    score_ax.plot(rollouts[window - 1:], smooth, color="tab:blue", linewidth=2,
                  label=f"mean of the last {window}")
    score_ax.legend(fontsize=8)
  score_ax.set(xlabel="rollout", ylabel="mean reward-model score", title="reward")
  kl_ax.plot(rollouts, [h["kl"] for h in history], marker=".", color="tab:orange",
             label="KL(policy || reference) per sequence")
  if max_kl > 0:
    kl_ax.axhline(max_kl, color="tab:red", linestyle="--", label=f"bound {max_kl:g}")
  if kl_target > 0:
    kl_ax.axhline(kl_target, color="tab:gray", linestyle=":", label=f"target {kl_target:g}")
  kl_ax.set(xlabel="rollout", ylabel="nats", title="KL to the reference")
  kl_ax.legend(fontsize=8)
  for ax in (score_ax, kl_ax):
    ax.grid(alpha=0.3)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=110)
  return path

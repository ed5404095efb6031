"""PNG curves of one or more runs from their `metrics.jsonl`, overlaid (one colour per run),
with each run's incidents from `events.jsonl` marked where they happened."""

import numpy as np

from llm.io import save_figure_atomic
from llm.research.run_files import series

# (file stem, title, [metrics], log y) for each panel; a panel no run has is left out.
PANELS = (
    ("loss", "loss (train: line, eval: markers)", ["loss", "eval_loss"], False),
    ("learning_rate", "learning rate", ["learning_rate"], False),
    ("grad_norm", "gradient norm", ["grad_norm"], True),
    ("throughput", "tokens / second", ["tokens_per_second"], False),
    ("mfu", "model FLOPs utilisation", ["mfu"], False),
    ("loss_scale", "loss scale (float16)", ["loss_scale"], True),
)
EVENT_COLOURS = {"spike": "tab:orange", "nonfinite": "tab:red"}


def _smooth(values: list[float], window: int) -> np.ndarray:
  """A trailing mean that keeps the length (short runs stay as they are)."""
  if window <= 1 or len(values) < window:
    return np.asarray(values)
  cumulative = np.cumsum(np.insert(np.asarray(values, float), 0, 0.0))
  head = cumulative[1:window] / np.arange(1, window)
  return np.concatenate([head, (cumulative[window:] - cumulative[:-window]) / window])


def _mark_events(ax, events: list[dict], colour: str) -> None:
  for event in events:
    ax.axvline(event["step"], color=EVENT_COLOURS.get(event.get("kind"), colour), alpha=0.6,
               linestyle="--", linewidth=1)


def _panel(ax, runs: dict, metrics: list[str], title: str, log: bool, smooth: int) -> bool:
  drawn = False
  for index, (name, run) in enumerate(runs.items()):
    colour = f"C{index}"
    for metric in metrics:
      steps, values = series(run["metrics"], metric)
      if not steps:
        continue
      drawn = True
      if metric.startswith("eval_"):
        ax.plot(steps, values, marker="o", linestyle=":", color=colour, label=f"{name} {metric}")
      else:
        shown = _smooth(values, smooth) if metric in ("loss", "grad_norm") else values
        ax.plot(steps, shown, color=colour, label=f"{name} {metric}", linewidth=1.2)
    _mark_events(ax, run["events"], colour)
  if drawn:
    ax.set(title=title, xlabel="step")
    if log:
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  return drawn


def _expert_load(ax, runs: dict) -> bool:
  """The share of tokens routed to each expert over training (first run with MoE metrics)."""
  for name, run in runs.items():
    keys = sorted({k for r in run["metrics"] for k in r if k.startswith("moe/load_")})
    if not keys:
      continue
    for key in keys:
      steps, values = series(run["metrics"], key)
      ax.plot(steps, _smooth(values, 10), linewidth=1, label=key.removeprefix("moe/load_"))
    ax.axhline(1.0 / len(keys), color="black", linestyle=":", label="uniform")
    ax.set(title=f"{name}: MoE expert load", xlabel="step", ylabel="share of tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=4)
    return True
  return False


def _has(runs: dict, metrics: list[str]) -> bool:
  return any(series(run["metrics"], m)[0] for run in runs.values() for m in metrics)


def _has_moe(runs: dict) -> bool:
  return any(k.startswith("moe/load_") for run in runs.values() for r in run["metrics"] for k in r)


def plot_runs(runs: dict, path: str, smooth: int = 10) -> list[str]:
  """Writes one PNG with a panel per metric any run logged; returns the panel titles drawn.
  `runs`: {name: {"metrics": [records], "events": [records]}}."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [p for p in PANELS if _has(runs, p[2])]
  moe = _has_moe(runs)
  rows = max(1, (len(panels) + moe + 1) // 2)
  fig, axes = plt.subplots(rows, 2, figsize=(11, 3.2 * rows), squeeze=False)
  axes = list(axes.flat)
  drawn = []
  for ax, (_, title, metrics, log) in zip(axes, panels):
    _panel(ax, runs, metrics, title, log, smooth)
    drawn.append(title)
  if moe and _expert_load(axes[len(panels)], runs):
    drawn.append("MoE expert load")
  for ax in axes[len(drawn):]:
    fig.delaxes(ax)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=100)
  return drawn

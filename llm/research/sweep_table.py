"""A sweep's results: one row per point (its values, final and best metrics) in `sweep.csv` and
`sweep.md` with the best point marked, and `sweep.png`, the metric against each swept field."""

import csv
import io
import math
import os

from llm.io import save_figure_atomic, write_text_atomic
from llm.research.run_files import summarize
from llm.research.sweep_plan import Plan

SHOWN = ("loss", "eval_loss", "eval_perplexity", "tokens_per_second", "mfu")


def collect(plan: Plan, metric: str = "eval_loss", goal: str = "min") -> dict:
  """{"fields", "rows", "best"}: a row per point; `best` names the point whose final `metric`
  is lowest (goal=min) or highest (goal=max) among points that report it."""
  if goal not in ("min", "max"):
    raise ValueError(f"goal must be min or max, got {goal!r}")
  fields = list(dict.fromkeys(f for p in plan.points for f, _ in p.overrides))
  rows = []
  for point in plan.points:
    summary = summarize(plan.workdir(point))
    row = {"point": point.name, **dict(point.overrides), "status": summary["status"],
           "steps": summary["steps"], "incidents": summary["incidents"]}
    row.update({f"final_{k}": summary["final"].get(k) for k in SHOWN})
    row.update({f"best_{k}": v for k, v in summary["best"].items() if k in SHOWN})
    row["metric"] = summary["final"].get(metric)
    rows.append(row)
  scored = [r for r in rows if isinstance(r["metric"], float) and math.isfinite(r["metric"])]
  pick = min if goal == "min" else max
  best = pick(scored, key=lambda r: r["metric"])["point"] if scored else None
  return {"fields": fields, "rows": rows, "best": best, "metric": metric, "goal": goal}


def _columns(table: dict) -> list[str]:
  columns = ["point", *table["fields"], "status", "steps", "incidents", "metric"]
  for row in table["rows"]:
    columns += [k for k in row if k not in columns]
  return columns


def to_csv(table: dict) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=["best", *_columns(table)], lineterminator="\n")
  writer.writeheader()
  for row in table["rows"]:
    writer.writerow({"best": int(row["point"] == table["best"]), **row})
  return out.getvalue()


def _cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return "" if value is None else str(value)


def to_markdown(table: dict, title: str = "", image: str = "") -> str:
  columns = [c for c in _columns(table) if c != "metric"]
  lines = [f"# {title or 'Sweep'}", "",
           f"{len(table['rows'])} points; best by final `{table['metric']}` ({table['goal']}): "
           f"**{table['best'] or 'none yet'}** (marked ★).", "",
           "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in table["rows"]:
    mark = " ★" if row["point"] == table["best"] else ""
    cells = [_cell(row.get(c)) + (mark if c == "point" else "") for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  if image:
    lines += ["", f"![final {table['metric']} against each swept field]({image})"]
  return "\n".join(lines) + "\n"


def _numeric(values: list[str]):
  try:
    return [float(v) for v in values]
  except ValueError:
    return None


def plot(table: dict, path: str) -> str:
  """One panel per swept field: the final metric of each point, the best one starred."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fields = table["fields"] or ["point"]
  fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 3.4), squeeze=False)
  rows = [r for r in table["rows"] if isinstance(r["metric"], float)]
  for ax, field in zip(axes[0], fields):
    labels = [str(r.get(field, r["point"])) for r in rows]
    numbers = _numeric(labels)
    if numbers is None:  # categorical: one slot per distinct value
      order = list(dict.fromkeys(labels))
      xs = [order.index(v) for v in labels]
      ax.set_xticks(range(len(order)), order, rotation=30, fontsize=8)
    else:
      xs = numbers
      if min(xs) > 0 and max(xs) / min(xs) >= 10:
        ax.set_xscale("log")
    ax.scatter(xs, [r["metric"] for r in rows], color="tab:blue")
    for x, r in zip(xs, rows):
      if r["point"] == table["best"]:
        ax.scatter([x], [r["metric"]], marker="*", s=220, color="tab:red", label="best", zorder=3)
        ax.legend(fontsize=8)
    ax.set(xlabel=field, ylabel=f"final {table['metric']}")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=110)
  return path


def write_results(plan: Plan, metric: str = "eval_loss", goal: str = "min") -> dict:
  """Writes sweep.csv, sweep.md and sweep.png into the sweep folder; returns the table."""
  table = collect(plan, metric, goal)
  write_text_atomic(os.path.join(plan.sweep_dir, "sweep.csv"), to_csv(table))
  image = ""
  if any(isinstance(r["metric"], float) for r in table["rows"]):
    image = os.path.basename(plot(table, os.path.join(plan.sweep_dir, "sweep.png")))
  write_text_atomic(os.path.join(plan.sweep_dir, "sweep.md"),
                    to_markdown(table, f"Sweep of {plan.config}", image))
  return table

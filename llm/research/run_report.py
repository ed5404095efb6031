"""A run report: a markdown page with the runs' final and best metrics, their incidents, their
resolved configs (for several runs, the fields that differ) and a PNG of their curves."""

import os

from llm.io import flatten_paths, write_text_atomic
from llm.research.run_files import read_json, read_jsonl, summarize
from llm.research.run_plots import plot_runs

SUMMARY = ("loss", "eval_loss", "eval_perplexity", "grad_norm", "tokens_per_second", "mfu")


def load_run(workdir: str) -> dict:
  """Everything a report shows about one workdir; an error if it holds no run."""
  metrics = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  if not metrics:
    raise FileNotFoundError(f"{workdir} has no metrics.jsonl records: give the --workdir of a "
                            "run (llm.main, or a stage folder of the lifecycle's workdir)")
  return {"metrics": metrics, "events": read_jsonl(os.path.join(workdir, "events.jsonl")),
          "config": read_json(os.path.join(workdir, "config.json")),
          "summary": summarize(workdir)}


def run_names(workdirs: list[str]) -> list[str]:
  """Short distinct names: the last folder names, with parents added until they differ."""
  parts = [os.path.abspath(w).rstrip("/").split("/") for w in workdirs]
  for depth in range(1, max(map(len, parts)) + 1):
    names = ["/".join(p[-depth:]) for p in parts]
    if len(set(names)) == len(names):
      return names
  return [str(i) for i in range(len(workdirs))]


def _fmt(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return "" if value is None else str(value)


def _summary_table(runs: dict) -> list[str]:
  lines = ["| run | status | steps | incidents | " + " | ".join(f"final {k}" for k in SUMMARY)
           + " | best eval_loss |", "|" + "---|" * (len(SUMMARY) + 5)]
  for name, run in runs.items():
    s = run["summary"]
    lines.append(f"| {name} | {s['status']} | {s['steps']} | {s['incidents']} | "
                 + " | ".join(_fmt(s["final"].get(k)) for k in SUMMARY)
                 + f" | {_fmt(s['best'].get('eval_loss'))} |")
  return lines


def _events(runs: dict) -> list[str]:
  lines = []
  for name, run in runs.items():
    for e in run["events"]:
      lines.append(f"- {name}, step {e.get('step')}: {e.get('kind')} ({e.get('detail', '')}); "
                   f"action: {e.get('action', '?')}")
  return lines or ["None."]


def _config_section(runs: dict) -> list[str]:
  """One run: its whole config. Several: the fields that differ, then each config folded."""
  flat = {name: {k.replace("/", "."): v for k, v in flatten_paths(run["config"]).items()}
          for name, run in runs.items()}
  lines = []
  if len(runs) > 1:
    keys = sorted({k for f in flat.values() for k in f})
    differ = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1]
    lines += ["Fields that differ between the runs:", "",
              "| field | " + " | ".join(runs) + " |", "|" + "---|" * (len(runs) + 1)]
    lines += [f"| {k} | " + " | ".join(_fmt(flat[n].get(k)) for n in runs) + " |"
              for k in differ] or ["| (none) |" + " |" * len(runs)]
    lines.append("")
  for name, fields in flat.items():
    body = "\n".join(f"{k} = {v!r}" for k, v in sorted(fields.items()))
    lines += [f"<details><summary>{name}: resolved config</summary>", "", "```", body, "```",
              "", "</details>", ""]
  return lines


def write_report(workdirs: list[str], out_dir: str, title: str = "") -> str:
  """Writes OUT_DIR/report.md and OUT_DIR/curves.png for the runs; returns the markdown path."""
  runs = {name: load_run(w) for name, w in zip(run_names(workdirs), workdirs)}
  os.makedirs(out_dir, exist_ok=True)
  panels = plot_runs(runs, os.path.join(out_dir, "curves.png"))
  lines = [f"# {title or 'Run report: ' + ', '.join(runs)}", "",
           "Runs: " + ", ".join(f"`{n}` ({os.path.abspath(w)})" for n, w in
                                zip(runs, workdirs)), "", "## Final metrics", "",
           *_summary_table(runs), "", "## Curves", "",
           f"![{', '.join(panels)}](curves.png)", "",
           "Incidents (spikes, non-finite steps) are dashed vertical lines.", "",
           "## Incidents", "", *_events(runs), "", "## Config", "", *_config_section(runs)]
  path = os.path.join(out_dir, "report.md")
  write_text_atomic(path, "\n".join(lines) + "\n")
  return path


def write_stage_reports(root: str, stages: dict[str, list[str]]) -> dict[str, str]:
  """A report per stage of a larger job (e.g. {"pretrain": [dir], "alignment": [dirs]}) in
  ROOT/reports/<stage>/, from those of its runs that logged metrics; {stage: report path}."""
  written = {}
  for stage, workdirs in stages.items():
    runs = [w for w in workdirs if read_jsonl(os.path.join(w, "metrics.jsonl"))]
    if runs:
      path = write_report(runs, os.path.join(root, "reports", stage), f"{stage}: run report")
      written[stage] = os.path.relpath(path, root)
  return written

"""The README's safety tables, from the runs and experiments that measured them.

  python experiments/safety_tables.py --guard runs/guard_smollm2 \
      --generation experiments/results/guarded_generation.json,OTHER.json \
      --backdoor experiments/results/backdoor.json \
      --json experiments/results/guard_smollm2.json --md experiments/results/safety_tables.md

--guard is a folder `python -m llm.safety.train_guard` wrote; its report is kept in --json (the
run folder itself is not committed). Missing inputs leave their table out.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from llm.io import write_json_atomic, write_text_atomic  # noqa: E402


def _pct(x) -> str:
  return "–" if x is None else f"{100 * x:.1f}%"


def guard_table(report: dict) -> list[str]:
  t = report["target_fpr"]
  lines = [f"Guard: {report['backbone']} + LoRA rank {report['lora_rank']}, {report['steps']} "
           f"steps of {report['batch_size']} x {report['seq_len']} tokens on "
           f"{report['examples']['train']} texts ({report['train_seconds'] / 60:.0f} min on "
           f"2 CPU cores); thresholds for {_pct(t['prompt'])} false positives on validation "
           f"prompts, {_pct(t['response'])} on validation replies. Held-out test split:", "",
           "| | examples (unsafe) | AUROC | F1 | recall | false positives | calibration error |",
           "|---|---|---|---|---|---|---|"]
  for side in ("guard", "baseline"):
    for kind, label in (("prompt", "prompts"), ("response", "prompt + reply")):
      m = report[side][kind]
      lines.append(f"| {side}, {label} | {m['examples']} ({m['unsafe']}) | {m['auroc']:.3f} | "
                   f"{m['f1']:.3f} | {_pct(m['recall'])} | {_pct(m['false_positive_rate'])} | "
                   f"{m['calibration_error']:.3f} |")
  lines += ["", f"False positives on benign (ShareGPT) test prompts: guard "
            f"{_pct(report['guard']['benign_prompt_false_positive_rate'])}, baseline "
            f"{_pct(report['baseline']['benign_prompt_false_positive_rate'])}."]
  if "categories" in report:
    c = report["categories"]
    lines += ["", f"Harm categories ({len(c['classes'])}: Do-Not-Answer's risk areas for "
              f"prompts, pyrit's categories for replies), a probe on the guard's features "
              f"fitted on {c['train_examples']} unsafe training texts; top-1 accuracy on the "
              "unsafe test texts:", "",
              "| | examples | guard's probe | TF-IDF probe | the kind's most common category |",
              "|---|---|---|---|---|"]
    for kind, label in (("prompt", "prompts"), ("response", "prompt + reply")):
      m = c[kind]
      lines.append(f"| {label} | {m['examples']} | {_pct(m['accuracy'])} | "
                   f"{_pct(m['baseline_accuracy'])} | {_pct(m['most_common_accuracy'])} |")
  return lines


def generation_table(runs: list[dict]) -> list[str]:
  g = runs[0]
  lines = [f"Rejection sampling: {g['model']} answering {g['without_guard']['harmful']['prompts']}"
           f" harmful and {g['without_guard']['benign']['prompts']} benign held-out prompts, "
           f"up to {g['samples']} samples of {g['max_tokens']} tokens at temperature "
           f"{g['temperature']}; the judge is the baseline at its own validation thresholds:",
           "", "| | unsafe replies to harmful prompts (guard / judge) | refused, harmful | "
           "refused, benign (false refusals) | unsafe replies to benign (judge) | "
           "seconds per prompt | unsafe cut (judge) |", "|---|---|---|---|---|---|---|"]

  def row(label, r, cut):
    return (f"| {label} | {_pct(r['harmful']['unsafe_by_guard'])} / "
            f"{_pct(r['harmful']['unsafe_by_judge'])} | {_pct(r['harmful']['refused'])} | "
            f"{_pct(r['benign']['refused'])} | {_pct(r['benign']['unsafe_by_judge'])} | "
            f"{r['seconds_per_prompt']:.2f} | {cut} |")

  for run in runs:
    target = _pct(run.get("response_target_fpr") or run["target_fpr"]["response"])
    cut = run.get("unsafe_cut_by_judge")
    lines.append(row(f"without guard (guard's reply threshold at {target})",
                     run["without_guard"], "–"))
    lines.append(row(f"with guard, reply threshold at {target} validation false positives",
                     run["with_guard"], "∞" if cut is None else f"{cut:.1f}x"))
  lines += ["", "Latency with the guard: " + ", ".join(
      f"{run['latency_ratio']:.2f}x" for run in runs) + " of the unguarded time per prompt, "
      "in the same order."]
  return lines


def backdoor_table(b: dict) -> list[str]:
  lines = [f"Backdoor: chat SFT of the lifecycle's tiny model, {b['steps']} steps; clean "
           f"fine-tune: held-out assistant loss {b['clean']['heldout_clean_loss']:.3f}, attack "
           f"success {_pct(b['clean']['attack_success'])}.", "",
           "| poison rate (planted) | attack success | false triggers | clean loss | "
           "spectral P / R | clustering P / R | density P / R | any P / R | inference AUROC "
           "(MAD / Mahalanobis) | after cleaning: attack success, clean loss change |",
           "|---|---|---|---|---|---|---|---|---|---|"]

  def pr(m):
    p = "–" if m["precision"] is None else f"{m['precision']:.2f}"
    return f"{p} / {m['recall']:.2f}"

  for r in b["rates"]:
    s, p, c, i = r["scan"], r["poisoned"], r["cleaned"], r["inference"]
    lines.append(f"| {_pct(r['rate'])} ({r['planted']}) | {_pct(p['attack_success'])} | "
                 f"{_pct(p['false_trigger'])} | {p['heldout_clean_loss']:.3f} | "
                 f"{pr(s['spectral'])} | {pr(s['clustering'])} | {pr(s['density'])} | "
                 f"{pr(s['any'])} | {i['mad_auroc']:.3f} / {i['mahalanobis_auroc']:.3f} | "
                 f"{_pct(c['attack_success'])}, {100 * c['clean_loss_change']:+.2f}% |")
  return lines


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--guard", default="runs/guard_smollm2")
  p.add_argument("--generation", default="experiments/results/guarded_generation.json,"
                 "experiments/results/guarded_generation_reply_fpr7.json,"
                 "experiments/results/guarded_generation_reply_fpr5.json",
                 help="comma-separated results of experiments/guarded_generation.py")
  p.add_argument("--backdoor", default="experiments/results/backdoor.json")
  p.add_argument("--json", default="experiments/results/guard_smollm2.json")
  p.add_argument("--md", default="experiments/results/safety_tables.md")
  args = p.parse_args()
  sections = []
  report_path = os.path.join(args.guard, "report.json")
  if os.path.exists(report_path):
    with open(report_path, encoding="utf-8") as f:
      report = json.load(f)
    write_json_atomic(args.json, report, indent=2)
  elif os.path.exists(args.json):
    with open(args.json, encoding="utf-8") as f:
      report = json.load(f)
  else:
    report = None
  if report:
    sections.append(guard_table(report))
  runs = []
  for path in args.generation.split(","):
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        runs.append(json.load(f))
  if runs:
    sections.append(generation_table(runs))
  if os.path.exists(args.backdoor):
    with open(args.backdoor, encoding="utf-8") as f:
      sections.append(backdoor_table(json.load(f)))
  write_text_atomic(args.md, "\n\n".join("\n".join(s) for s in sections) + "\n")
  print(open(args.md, encoding="utf-8").read())


if __name__ == "__main__":
  main()

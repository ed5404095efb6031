"""Statistics, verdict, markdown and plot of the FIM-for-free study (experiments/papers/fim.py).

Pure functions of the measured numbers, so the verdict logic is testable without training.
A run is {"loss", "rel_change", "rel_se", "train_loss", "em": {layout: rate}, "em_n",
"middle": {layout or "prefix_only": loss}, "middle_se": {...}, "suffix_gain": {layout:
[gain, se]}} for the infill layouts LAYOUTS.
"""

import math

import numpy as np

from llm.io import save_figure_atomic

# Bavarian et al. 2022: FIM training leaves left-to-right loss within about 1-2% of a FIM-0
# model trained on the same tokens, while infilling goes from near zero to clearly above it.
L2R_TOLERANCE = 0.02
CLAIM_L2R = "FIM rate 0.5-0.9 leaves L2R loss within ~1-2% of FIM-0 (\"FIM for free\")"
CLAIM_EM = "infill ability rises from ~0 at FIM-0 to clearly above it"
LAYOUTS = ("psm", "spm")


def binomial_se(p: float, n: int) -> float:
  """Standard error of a proportion p measured on n cases."""
  return math.sqrt(p * (1 - p) / n) if n else float("nan")


def paired_delta(loss_sums, base_sums, tokens) -> tuple:
  """(token-weighted loss difference, its standard error) of two models on the same rows.

  loss_sums/base_sums: summed cross-entropy per row; tokens: scored tokens per row. Rows are
  treated as independent draws, so se = sqrt(R) * std(row differences) / tokens.
  """
  diff = np.asarray(loss_sums, np.float64) - np.asarray(base_sums, np.float64)
  total = float(np.sum(tokens))
  se = math.sqrt(len(diff)) * float(np.std(diff, ddof=1)) / total if len(diff) > 1 else math.nan
  return float(diff.sum()) / total, se


def ratio_se(loss_sums, tokens) -> float:
  """Standard error of a token-weighted mean loss over independent rows."""
  sums, tokens = np.asarray(loss_sums, np.float64), np.asarray(tokens, np.float64)
  mean = sums.sum() / tokens.sum()
  return math.sqrt(len(sums)) * float(np.std(sums - mean * tokens, ddof=1)) / tokens.sum()


def em_text(p: float, n: int) -> str:
  """An exact-match rate with its binomial standard error; with no hits, the rule-of-three
  95% upper bound instead (the standard error of 0/n is 0, which says nothing)."""
  if p == 0:
    return f"0/{n} (95% upper bound {300 / n:.1f}%)"
  return f"{100 * p:.1f}% ± {100 * binomial_se(p, n):.1f}%"


def em_gap(p: float, n: int, p0: float, n0: int) -> tuple:
  """(difference of two exact-match rates, its standard error, unpaired)."""
  return p - p0, math.sqrt(binomial_se(p, n) ** 2 + binomial_se(p0, n0) ** 2)


def verdict(runs: dict) -> dict:
  """runs: {rate: run} with rate 0.0 the baseline.

  The L2R part holds when every FIM rate's relative loss change is at most L2R_TOLERANCE. The
  infill part holds when, in some layout, every FIM rate's exact match beats FIM-0's in that
  layout by more than two standard errors. Both: reproduced; one: partly; none: not.
  """
  base = runs[0.0]
  fim_rates = sorted(r for r in runs if r > 0)
  l2r_ok = all(runs[r]["rel_change"] <= L2R_TOLERANCE for r in fim_rates)
  gaps = {layout: {str(r): em_gap(runs[r]["em"][layout], runs[r]["em_n"], base["em"][layout],
                                  base["em_n"]) for r in fim_rates} for layout in base["em"]}
  holding = [layout for layout, by_rate in gaps.items()
             if all(gap > 2 * se for gap, se in by_rate.values())]
  label = {2: "reproduced", 1: "partly reproduced", 0: "not reproduced"}[
      l2r_ok + bool(holding)]
  return {"l2r_holds": l2r_ok, "infill_holds": bool(holding), "infill_layouts": holding,
          "label": label, "em_gaps": gaps}


def _pct(x: float) -> str:
  return f"{100 * x:+.2f}%"


def _ems(runs: dict, layout: str) -> str:
  return ", ".join(f"{r}: {em_text(runs[r]['em'][layout], runs[r]['em_n'])}"
                   for r in sorted(runs))


def verdict_sentence(runs: dict, judged: dict) -> str:
  """One plain sentence with the numbers behind the verdict."""
  rates = sorted(runs)
  losses = ", ".join(f"{runs[r]['loss']:.4f}" for r in rates)
  changes = ", ".join(f"{_pct(runs[r]['rel_change'])} ± {100 * runs[r]['rel_se']:.2f}%"
                      for r in rates if r > 0)
  layouts = list(runs[0.0]["em"])
  ems = "; ".join(f"{layout.upper()} {_ems(runs, layout)}" for layout in layouts)
  notes = []
  if not any(runs[r]["em"][layout] for r in rates for layout in layouts):
    notes.append("no exact infill matches at any FIM rate")
  elif not judged["infill_holds"]:
    notes.append("the infill gain is within two standard errors")
  else:
    notes.append(f"infill gain beyond two standard errors in "
                 f"{', '.join(x.upper() for x in judged['infill_layouts'])}")
  notes.append(f"L2R cost {'within' if judged['l2r_holds'] else 'beyond'} "
               f"{100 * L2R_TOLERANCE:.0f}%")
  return (f"**{judged['label'].capitalize()}** ({'; '.join(notes)}): held-out L2R loss at FIM "
          f"rate {'/'.join(str(r) for r in rates)} is {losses} (relative to FIM-0: {changes}); "
          f"single-line infill exact match on {runs[rates[0]]['em_n']} held-out cases is {ems}.")


def middle_sentence(runs: dict) -> str:
  """The teacher-forced middle-line losses, a finer view of infilling than exact match."""
  parts = []
  for r in sorted(runs):
    gains = ", ".join(f"{layout.upper()} {g:+.3f} ± {se:.3f}"
                      for layout, (g, se) in runs[r]["suffix_gain"].items())
    parts.append(f"{r}: {gains}")
  return ("What the suffix is worth (teacher-forced loss of the held-out middle line from the "
          "prefix alone minus with the FIM prompt, nats/token, paired by case; positive means "
          "the model uses the suffix) at FIM rate " + "; ".join(parts) + ".")


def _row(name: str, values) -> str:
  return f"| {name} | " + " | ".join(values) + " |"


def markdown(runs: dict, judged: dict, settings: dict, command: str, seconds: float) -> str:
  """The results section, generated from the numbers."""
  rates = sorted(runs)
  layouts = list(runs[0.0]["em"])
  claims = [_row("L2R held-out loss, rel. to FIM-0", [
      "within ~1-2%", ", ".join(f"{r}: {_pct(runs[r]['rel_change'])} ± "
                                f"{100 * runs[r]['rel_se']:.2f}%" for r in rates if r > 0)])]
  claims += [_row(f"Infill exact match, {layout.upper()}",
                  ["~0 at FIM-0, clearly higher with FIM", _ems(runs, layout)])
             for layout in layouts]
  table = [_row("L2R held-out loss", [f"{runs[r]['loss']:.4f}" for r in rates])]
  table += [_row(f"Middle-line loss, {k.upper() if k in LAYOUTS else 'prefix only'}",
                 [f"{runs[r]['middle'][k]:.3f} ± {runs[r]['middle_se'][k]:.3f}" for r in rates])
            for k in (*layouts, "prefix_only")]
  table.append(_row("Final train loss (FIM-transformed data)",
                    [f"{runs[r]['train_loss']:.4f}" for r in rates]))
  return "\n".join([
      "### FIM for free (Bavarian et al. 2022)", "",
      f"`{command}` ({seconds / 60:.1f} min on this machine)", "",
      f"A {settings['params'] / 1e6:.2f}M-parameter decoder trained {settings['steps']} steps "
      f"({settings['train_tokens'] / 1e6:.2f}M tokens) on the packaged Python standard library, "
      f"once per FIM rate, from the same documents, tokenizer and seed. L2R loss is on "
      f"{settings['heldout_tokens']:,} held-out tokens that are not FIM-transformed (standard "
      "errors paired by held-out row). Infill: one held-out line removed from a 12-line window "
      f"({runs[0.0]['em_n']} cases), prompted in PSM and in SPM order, greedy, exact match "
      "after stripping whitespace (binomial standard errors).", "",
      "| | Published claim | Ours |", "|---|---|---|", *claims, "",
      "| FIM rate | " + " | ".join(str(r) for r in rates) + " |",
      "|---" * (len(rates) + 1) + "|", *table, "",
      middle_sentence(runs), "", verdict_sentence(runs, judged), ""])


def plot(runs: dict, path: str) -> None:
  """Held-out L2R loss, infill exact match and middle-line loss against FIM rate."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rates = sorted(runs)
  fig, (ax_loss, ax_em, ax_mid) = plt.subplots(1, 3, figsize=(13, 3.8))
  base = runs[0.0]["loss"]
  ax_loss.errorbar(rates, [runs[r]["loss"] for r in rates],
                   yerr=[runs[r]["rel_se"] * base for r in rates], marker="o", capsize=4)
  ax_loss.axhspan(base * (1 - L2R_TOLERANCE), base * (1 + L2R_TOLERANCE), color="grey",
                  alpha=0.2, label=f"FIM-0 ± {100 * L2R_TOLERANCE:.0f}%")
  ax_loss.set(xlabel="FIM rate", ylabel="held-out L2R loss (nats/token)",
              title="L2R loss, not FIM-transformed\n(error: paired s.e. vs FIM-0)")
  ax_loss.legend(fontsize=8)
  top = 5.0
  for i, layout in enumerate(runs[0.0]["em"]):
    em = [100 * runs[r]["em"][layout] for r in rates]
    se = [100 * binomial_se(runs[r]["em"][layout], runs[r]["em_n"]) for r in rates]
    upper = [e if p else 300 / runs[r]["em_n"] for e, p, r in zip(se, em, rates)]
    ax_em.errorbar([r + 0.01 * i for r in rates], em, yerr=[se, upper], marker="o",
                   capsize=4, color=f"C{i + 1}", label=layout.upper())
    top = max(top, 1.3 * max(e + u for e, u in zip(em, upper)))
  ax_em.set(xlabel="FIM rate", ylabel="exact match (%)", ylim=(0, top),
            title=f"Single-line infill exact match (N={runs[0.0]['em_n']})\n"
                  "(binomial s.e.; at 0 hits the 95% upper bound)")
  ax_em.legend(fontsize=8)
  for i, key in enumerate(runs[0.0]["middle"]):
    ax_mid.errorbar(rates, [runs[r]["middle"][key] for r in rates],
                    yerr=[runs[r]["middle_se"][key] for r in rates], marker="o", capsize=4,
                    color=f"C{i + 1}", label=key.upper() if key in LAYOUTS else "prefix only")
  ax_mid.set(xlabel="FIM rate", ylabel="loss of the middle line (nats/token)",
             title="Teacher-forced middle-line loss")
  ax_mid.legend(fontsize=8)
  fig.tight_layout()
  save_figure_atomic(fig, path, dpi=120)

"""The DPO reproduction's verdict, figure and markdown, all computed from the measured numbers."""

import os
import sys

import numpy as np

from llm.io import write_json_atomic, write_text_atomic

Z = 1.96  # two-sided 95%
CLAIM = ("DPO reaches a reward/KL frontier at least as good as PPO's (Fig. 2) and wins more "
         "often than SFT, more than PPO does (GPT-4-judged win rates on TL;DR and Anthropic HH)")


def frontier_gaps(sft: tuple, dpo: list, ppo: list) -> list[dict]:
  """For each PPO point (kl, score, se): the DPO frontier's score at the same KL minus PPO's
  (scores may be gains over SFT, paired by prompt).

  The DPO frontier is the upper envelope of SFT (KL 0) and the DPO points, linear between
  points and flat beyond the last; the gap's standard error combines PPO's with that of the
  DPO point nearest in KL."""
  points = sorted([sft] + list(dpo))
  kls = np.array([p[0] for p in points], np.float64)
  envelope = np.maximum.accumulate(np.array([p[1] for p in points], np.float64))
  out = []
  for kl, score, se in ppo:
    nearest = points[int(np.argmin(np.abs(kls - kl)))]
    at = float(np.interp(kl, kls, envelope))
    out.append({"ppo_kl": kl, "ppo_score": score, "dpo_frontier_score": at,
                "gap": at - score, "se": float(np.hypot(se, nearest[2]))})
  return out


def _better(rate: float, se: float) -> str:
  if rate - Z * se > 0.5:
    return "yes"
  return "no (worse)" if rate + Z * se < 0.5 else "inconclusive"


def _not_worse(gap: float, se: float) -> str:
  return "yes" if gap >= -Z * se else "no"


def verdict(summary: dict, dpo_label: str, ppo_label: str, judge_check: dict) -> dict:
  """The published claim in four parts, each judged at 95%: reproduced when all hold, not
  reproduced when none does, partly otherwise. "Higher than SFT" needs the interval above 0.5;
  "at least as good as PPO" holds unless DPO is worse by more than its error. The judge's
  parts are inconclusive when the judge fails its check (preferring a conversation's own
  reply to an off-topic one, significantly above 0.5). The frontier is compared twice: with
  the reward model read where it was trained (the reply's last token) and where PPO's rollouts
  read it (one token earlier)."""
  dpo, ppo = summary[dpo_label], summary[ppo_label]
  gaps = {}
  for read in ("", "_ppo_read"):
    points = lambda method: [(s["kl"], s["rm_gain" + read], s[f"rm_gain{read}_se"])
                             for s in summary.values() if s["method"] == method]
    gaps["trained_read" if not read else "ppo_read"] = frontier_gaps(
        points("sft")[0], points("dpo"), points("ppo"))
  frontier = {read: all(_not_worse(g["gap"], g["se"]) == "yes" for g in found)
              for read, found in gaps.items()}
  judge_dpo, judge_ppo = dpo["judge_vs_sft"], ppo["judge_vs_sft"]
  judge_diff = judge_dpo["win_rate"] - judge_ppo["win_rate"]
  judge_se = float(np.hypot(judge_dpo["se"], judge_ppo["se"]))
  claims = {
      "dpo_beats_sft_by_judge": _better(judge_dpo["win_rate"], judge_dpo["se"]),
      "dpo_beats_sft_by_reward_model": _better(dpo["rm_vs_sft"]["win_rate"],
                                               dpo["rm_vs_sft"]["se"]),
      "dpo_frontier_at_least_ppo": (
          "yes" if all(frontier.values()) else "no" if not any(frontier.values()) else
          "only with the reward model read where it was trained" if frontier["trained_read"]
          else "only with the reward model read where PPO reads it"),
      "dpo_judge_win_at_least_ppo": _not_worse(judge_diff, judge_se)}
  relevance = judge_check["own_vs_off_topic"]
  judge_valid = _better(relevance["win_rate"], relevance["se"]) == "yes"
  if not judge_valid:
    for key in ("dpo_beats_sft_by_judge", "dpo_judge_win_at_least_ppo"):
      claims[key] = "inconclusive (judge fails its check)"
  held = sum(v == "yes" for v in claims.values())
  overall = ("reproduced" if held == len(claims) else
             "not reproduced" if held == 0 else "partly reproduced")
  return {"claims": claims, "frontier_gaps": gaps, "judge_valid": judge_valid,
          "judge_dpo_minus_ppo": judge_diff,
          "judge_dpo_minus_ppo_se": judge_se, "verdict": overall}


def assemble(args, settings: dict, chain: dict, summary: dict, texts: dict, messages: list,
             main_labels: list, judge_check: dict) -> dict:
  """Everything the JSON holds (the caller adds the wall time)."""
  examples = [{"message": messages[i], **{label: texts[label][i] for label in texts}}
              for i in range(min(5, len(messages)))]
  return {"paper": "Rafailov et al. 2023, Direct Preference Optimization",
          "claim": CLAIM,
          "command": " ".join(["python", "experiments/papers/dpo_vs_ppo.py", *sys.argv[1:]]),
          "settings": dict(settings, workdir=args.workdir, new_tokens=args.new_tokens,
                           seed=args.seed, scale=args.scale, quick=args.quick,
                           prompts_used=len(messages), temperature=1.0,
                           judge="SmolLM2-135M-Instruct (Q4_1 GGUF), logits of A vs B, both "
                                 "orders"),
          "chain": chain, "policies": summary, "main": main_labels, "judge_check": judge_check,
          "verdict": verdict(summary, *main_labels, judge_check), "examples": examples}


def plot(result: dict, path: str) -> str:
  """Reward-model score and win rate against KL for every point; win-rate bars with errors."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  policies = result["policies"]
  fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
  _frontier(axes[0], policies, lambda s: (s["rm_gain"], s["rm_gain_se"]), "", "-")
  _frontier(axes[0], policies, lambda s: (s["rm_gain_ppo_read"], s["rm_gain_ppo_read_se"]),
            ", PPO's read", "--", faded=True)
  # SFT against itself is a tie by definition: no error bar
  _frontier(axes[1], policies, lambda s: (s["rm_vs_sft"]["win_rate"],
                                          s["rm_vs_sft"]["se"] * (s["method"] != "sft")), "",
            "-")
  judged = lambda s: ((0.5, 0.0) if s["method"] == "sft" else (
      s["judge_vs_sft"]["win_rate"], s["judge_vs_sft"]["se"]) if "judge_vs_sft" in s else None)
  _frontier(axes[1], policies, judged, ", SmolLM2", ":", hollow=True)
  axes[0].set(xlabel="KL(policy || SFT) per reply, own samples",
              ylabel="reward-model score minus SFT's (paired by prompt)",
              title=f"reward vs KL (SFT scores {policies['SFT']['rm_score']:.2f}); dashed: "
                    "read one token early, as PPO does")
  axes[1].axhline(0.5, color="gray", lw=0.8)
  axes[1].set(xlabel="KL(policy || SFT) per reply", ylabel="win rate vs SFT",
              title="win rate vs KL: reward model (filled), SmolLM2 (hollow)")
  _bars(axes[2], result)
  for ax in axes[:2]:
    ax.legend(fontsize=7)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def _frontier(ax, policies: dict, value, suffix: str, style: str, faded: bool = False,
              hollow: bool = False) -> None:
  """One line per method from SFT (KL 0) through its points; value(summary) -> (y, error) or
  None where the point has no such value."""
  styles = {"sft": ("k", "*"), "dpo": ("tab:blue", "o"), "ppo": ("tab:red", "s")}
  for method, (color, marker) in styles.items():
    rows = sorted((s["kl"], label, s) for label, s in policies.items()
                  if s["method"] == method and value(s) is not None)
    if method != "sft":
      if not rows:
        continue
      rows = [(0.0, "SFT", policies["SFT"])] + rows  # each frontier starts at the reference
    elif suffix:
      continue
    ys, es = zip(*(value(r[2]) for r in rows))
    ax.errorbar([r[0] for r in rows], ys, xerr=[r[2]["kl_se"] for r in rows], yerr=es,
                color=color, marker=marker, capsize=3, alpha=0.45 if faded else 1.0,
                linestyle=style if method != "sft" else "none", label=method.upper() + suffix,
                mfc="none" if hollow else color)
    if faded or hollow:
      continue
    for (kl, label, _), y in zip(rows, ys):
      if label != "SFT" or method == "sft":
        ax.annotate(label.split(" ", 1)[-1] if method != "sft" else "SFT", (kl, y),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)


def _bars(ax, result: dict) -> None:
  policies, labels = result["policies"], result["main"]
  x = np.arange(len(labels))
  for offset, name, key in ((-0.2, "reward model", "rm_vs_sft"),
                            (0.2, "SmolLM2 judge (2 orders)", "judge_vs_sft")):
    rates = [policies[label][key]["win_rate"] for label in labels]
    errors = [policies[label][key]["se"] for label in labels]
    ax.bar(x + offset, rates, 0.4, yerr=errors, capsize=4, label=name)
  checks = result["judge_check"]
  at = len(labels) + np.arange(len(checks))
  ax.bar(at, [c["win_rate"] for c in checks.values()], 0.4, color="tab:gray",
         yerr=[c["se"] for c in checks.values()], capsize=4,
         label="judge check: picks the first")
  ax.axhline(0.5, color="gray", lw=0.8)
  names = {"own_vs_off_topic": "own reply vs\noff-topic reply",
           "own_vs_sft_sample": "own reply vs\nSFT sample"}
  ax.set_xticks(list(x) + list(at), list(labels) + [names.get(k, k) for k in checks],
                fontsize=8)
  ax.set(ylim=(0, 1), ylabel="win rate vs SFT (+- 1 s.e.)",
         title=f"win rate vs SFT, {result['settings']['prompts_used']} held-out prompts")
  ax.legend(fontsize=8)


def _cell(entry: dict | None) -> str:
  return "–" if not entry else f"{entry['win_rate']:.3f} ± {entry['se']:.3f}"


def markdown(result: dict) -> str:
  """The README section, from the numbers."""
  s, v, policies = result["settings"], result["verdict"], result["policies"]
  lines = ["### DPO vs PPO vs SFT (Rafailov et al. 2023)", "",
           "```bash", result["command"], "```", "",
           f"The lifecycle's chain (pretraining {s['pretrain_steps']} steps; chat SFT, reward "
           f"model, DPO, PPO: {', '.join(map(str, s['align_steps']))} steps; "
           f"{s['conversations']} ShareGPT conversations), plus DPO at beta "
           f"{', '.join(f'{b:g}' for b in s['dpo_betas'])} and PPO at kl_coef "
           f"{', '.join(f'{c:g}' for c in s['ppo_kl_coefs'])} from the same SFT model and "
           f"reward model. On {s['prompts_used']} held-out prompts each policy samples one "
           f"reply (temperature 1, {s['new_tokens']} tokens at most, seed {s['seed']}). "
           f"Whole run: {result['wall_seconds']:.0f} s.", "",
           "| method | KL to SFT | RM score | RM score − SFT's | the same, read as PPO reads "
           "| win vs SFT (RM) | win vs SFT (SmolLM2 judge) | reply tokens (stopped) |",
           "|---|---|---|---|---|---|---|---|"]
  for label, p in policies.items():
    lines.append(f"| {label} | {p['kl']:.3f} ± {p['kl_se']:.3f} | {p['rm_score']:.3f} ± "
                 f"{p['rm_score_se']:.3f} | {p['rm_gain']:+.3f} ± {p['rm_gain_se']:.3f} | "
                 f"{p['rm_gain_ppo_read']:+.3f} ± {p['rm_gain_ppo_read_se']:.3f} | "
                 f"{_cell(p['rm_vs_sft'] if label != 'SFT' else None)} | "
                 f"{_cell(p.get('judge_vs_sft'))} | {p['reply_tokens']:.1f} "
                 f"({p['ended_share']:.0%}) |")
  dpo, ppo = (policies[label] for label in result["main"])
  lines += ["", "Errors are one standard error (binomial over prompts for win rates, ties "
            "counted half); \"holds\" is judged at 95%.", ""]
  lines += _claims_table(v, dpo, ppo)
  judge = [f"{label}: orders agree on {p['judge_vs_sft']['order_agreement']:.0%} of prompts, "
           f"the judge picks \"A\" {p['judge_vs_sft']['picked_a_share']:.0%} of the time"
           for label, p in ((lbl, policies[lbl]) for lbl in result["main"])]
  off, sft = result["judge_check"]["own_vs_off_topic"], result["judge_check"]["own_vs_sft_sample"]
  lines += ["", "SmolLM2 reads each pair as A/B and B/A; its win rate sums the log-odds of both "
            "orders, so a fixed preference for a position cancels. Position bias: "
            + "; ".join(judge) + ". Checks of the judge (replies cut to "
            f"{s['new_tokens']} tokens): it prefers a held-out conversation's own reply to another "
            f"conversation's in {_cell(off)} of {off['n']} pairs "
            f"({'passes' if v['judge_valid'] else 'fails'}: the judge's rows above count only if "
            f"this is above 0.5), and to our SFT model's sample in {_cell(sft)} of {sft['n']}.",
            "", _ppo_read_note(policies), "",
            f"**Verdict: {v['verdict']}.** " + _verdict_sentence(v), ""]
  return "\n".join(lines)


def _ppo_read_note(policies: dict) -> str:
  stops = ", ".join(f"{label} {p['ended_share']:.0%}" for label, p in policies.items()
                    if p["method"] in ("sft", "ppo"))
  return ("PPO's rollouts read the reward model one token before the reply's last token (for "
          "a reply that stopped, the token before <|im_end|>; `llm/align/ppo.py`, "
          "`_rollout_stats`), while the reward model was trained on pairs to read at the last "
          "one (the <|im_end|> closing the reply). The \"read as PPO reads\" column is the score "
          "PPO actually maximised; the column before it is the reward model as trained. The "
          "stopped share shows how often a reply ended with <|im_end|> within the token budget "
          f"({stops}).")


def _claims_table(v: dict, dpo: dict, ppo: dict) -> list[str]:
  c = v["claims"]
  gaps = " / ".join(
      f"{'as trained' if read == 'trained_read' else 'as PPO reads'}: " + "; ".join(
          f"at KL {g['ppo_kl']:.2f}: {g['gap']:+.3f} ± {g['se']:.3f}" for g in found)
      for read, found in v["frontier_gaps"].items())
  return ["| published claim | ours | holds |", "|---|---|---|",
          f"| DPO wins over SFT (GPT-4 judge on TL;DR at temperature 0: DPO ≈ 61%, PPO ≈ "
          f"57%, SFT ≈ 40% against the reference summaries) | SmolLM2 judge "
          f"{_cell(dpo['judge_vs_sft'])} | {c['dpo_beats_sft_by_judge']} |",
          f"| DPO improves the reward over SFT | RM win {_cell(dpo['rm_vs_sft'])} | "
          f"{c['dpo_beats_sft_by_reward_model']} |",
          f"| DPO's reward/KL frontier dominates PPO's (Fig. 2, IMDb) | DPO frontier minus PPO "
          f"score gain {gaps} | {c['dpo_frontier_at_least_ppo']} |",
          f"| DPO's win rate ≥ PPO's | judge DPO − PPO {v['judge_dpo_minus_ppo']:+.3f} ± "
          f"{v['judge_dpo_minus_ppo_se']:.3f} (PPO {_cell(ppo['judge_vs_sft'])}) | "
          f"{c['dpo_judge_win_at_least_ppo']} |"]


def _verdict_sentence(v: dict) -> str:
  held = [k.replace("_", " ") for k, x in v["claims"].items() if x == "yes"]
  failed = [f"{k.replace('_', ' ')} ({x})" for k, x in v["claims"].items() if x != "yes"]
  return (f"Holds: {', '.join(held) or 'none'}. Does not hold: {', '.join(failed) or 'none'}. "
          "Caveats: a 2-layer model, synthetic preference pairs (off-topic or truncated "
          "rejections), replies of a couple dozen tokens sampled at temperature 1 (the paper's "
          "win rates peak at temperature 0); PPO optimises the reward model directly and DPO "
          "only through the pairs it was trained on, so the RM columns are not independent of "
          "the methods; the SmolLM2 column is, when the judge passes its check.")


def write_all(result: dict, folder: str) -> None:
  os.makedirs(folder, exist_ok=True)
  result["figure"] = plot(result, os.path.join(folder, "dpo_vs_ppo.png"))
  write_json_atomic(os.path.join(folder, "dpo_vs_ppo.json"), result, indent=2,
                    ensure_ascii=False)
  write_text_atomic(os.path.join(folder, "dpo_vs_ppo.md"), markdown(result))

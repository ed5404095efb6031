"""The markdown section and the figure of experiments/papers/moe_vs_dense.py, from its numbers."""

HEADING = "### Mixture of experts vs dense (Switch Transformer, Mixtral)"
CLAIM = (
    "Switch Transformer (Fedus et al., 2021): at equal FLOPs per token a sparse top-1 model "
    "beats its dense counterpart (Switch-Base reaches T5-Base's quality about 7x sooner), and "
    "more experts (more total parameters at the same FLOPs) help more. Mixtral (Jiang et al., "
    "2024): 8 experts, top-2, 13B of 47B parameters active, matches or beats the dense Llama 2 "
    "70B. At equal *total* parameters a dense model spends more compute per token and is "
    "expected to be at least as good, so the MoE should land between the dense model with its "
    "active parameters and the dense model with its total parameters.")
MAIN_NAMES = {"dense": "dense `tiny` (equal active)", "moe": "MoE, best settings found",
              "dense_equal_total": "dense, MLP as wide as all experts (equal total)"}
SHORT_NAMES = {"dense": "dense (equal active)", "moe": "MoE (best)",
               "dense_equal_total": "dense (equal total)"}
CODE_CHECKS = (
    "Code read for bugs (llm/model/moe.py, moe_routing.py, llm/train/lm_task.py): the top-k "
    "weights are renormalised over the chosen experts (`route`); the router gets gradients "
    "through them and through the balance loss's mean probabilities (tests/model/test_moe.py "
    "checks the layer's gradients against a per-token loop); `load_balance` = E * sum_e f_e "
    "P_e with f the share of the N*k assignments, so it is 1.0 when balanced (the Switch "
    "normalisation; Hugging Face's Mixtral counts f per choice and gets k at balance, i.e. "
    "its 0.01 weighs twice ours); both auxiliary losses are averaged over the MoE layers and "
    "added to the loss (lm_task.py, `loss_fn`), evaluation uses cross-entropy only. All "
    "of this is right for top-2.")


def _noise(result) -> float:
  """Differences below this are not told apart from seed noise (twice the seed spread)."""
  return max(2 * result["ablations"]["seed_spread"], 0.01)


def _delta(value: float) -> str:
  return f"{value:+.3f}"


def _verdict_word(gap: float, noise: float) -> str:
  if gap < -noise:
    return "reproduced"
  return "partly reproduced" if gap <= noise else "not reproduced"


def main_table(result) -> list[str]:
  runs, steps = result["main"]["runs"], result["main"]["steps"]
  dense = runs["dense"]["heldout_loss"]
  lines = [f"| model ({steps} steps, {runs['dense']['train_tokens']:,} tokens) | active | "
           "total | lr | held-out loss | vs dense |", "|---|---:|---:|---:|---:|---:|"]
  for key, name in MAIN_NAMES.items():
    r = runs[key]
    lines.append(f"| {name} | {r['active_params'] / 1e6:.2f}M | {r['total_params'] / 1e6:.2f}M"
                 f" | {r['lr']:.1e} | {r['heldout_loss']:.4f} | "
                 f"{_delta(r['heldout_loss'] - dense)} |")
  return lines


def curve_table(result) -> list[str]:
  """Held-out loss (eval batches) at each evaluation point of the main runs."""
  runs = result["main"]["runs"]
  tokens = runs["dense"]["curve"]["eval_tokens"]
  lines = ["| tokens | " + " | ".join(SHORT_NAMES[k] for k in MAIN_NAMES) +
           " | MoE best - dense |", "|---:|" + "---:|" * (len(MAIN_NAMES) + 1)]
  for i, t in enumerate(tokens):
    vals = [runs[k]["curve"]["eval_loss"][i] for k in MAIN_NAMES]
    lines.append(f"| {t:,} | " + " | ".join(f"{v:.3f}" for v in vals) +
                 f" | {_delta(vals[1] - vals[0])} |")
  return lines


def ablation_rows(result) -> list[dict]:
  a = result["ablations"]
  rows = []
  for name, model in (("dense", "dense"), ("moe", "MoE")):
    rows += [dict(r, change=f"{model}, lr {r['lr']:.1e}") for r in a[f"{name}_lr_grid"]]
    rows += [dict(r, change=f"{model}, lr {r['lr']:.1e}, seed 1") for r in a[f"{name}_seed1"]]
  rows += [dict(r, change=f"MoE: {r['change']}") for r in a["moe_variants"]]
  rows += [dict(r, change=f"{'MoE' if 'moe' in r['base'] else 'dense'}, batch "
                f"{r['batch_size']} for {r['steps']} steps (equal tokens)")
           for r in a["big_batch"]]
  return rows


def ablation_table(result) -> list[str]:
  a = result["ablations"]
  ref = a["moe_reference"]["heldout_loss"]
  lines = [f"| run | change | held-out | vs MoE reference | router entropy first -> last | "
           "max load / mean | dropped |", "|---|---|---:|---:|---:|---:|---:|"]
  for r in ablation_rows(result):
    router = r["router"]
    entropy = (f"{router['entropy_first']:.2f} -> {router['entropy_last']:.2f}"
               if router else "")
    load = f"{router['max_load_ratio']:.2f}" if router else ""
    dropped = f"{router['dropped_fraction']:.3f}" if router else ""
    lines.append(f"| {r['label']} | {r['change']} | {r['heldout_loss']:.4f} | "
                 f"{_delta(r['heldout_loss'] - ref)} | {entropy} | {load} | {dropped} |")
  return lines


def _effect(delta: float, noise: float) -> str:
  return "helps" if delta < -noise else ("hurts" if delta > noise else "within noise")


def seeds_and_rates(result) -> list[str]:
  """The two-seed pairs (noise, stability) and the learning-rate comparison."""
  a, noise = result["ablations"], _noise(result)
  pairs = []
  for name, model in (("dense", "dense"), ("moe", "MoE")):
    seed0 = {r["lr"]: r["heldout_loss"] for r in a[f"{name}_lr_grid"]}
    pairs += [f"{model} lr {r['lr']:.1e}: {seed0[r['lr']]:.3f} / {r['heldout_loss']:.3f}"
              for r in a[f"{name}_seed1"]]
  moe = {r["lr"]: r["heldout_loss"] for r in a["moe_lr_grid"]}
  dense = {r["lr"]: r["heldout_loss"] for r in a["dense_lr_grid"]}
  gaps = {lr: moe[lr] - dense[lr] for lr in moe if lr in dense}
  best_gap = a["moe_reference"]["heldout_loss"] - a["dense_reference"]["heldout_loss"]
  return [
      f"Noise and stability (held-out, seed 0 / seed 1): {'; '.join(pairs)}. Rates are chosen "
      f"on the two-seed mean: dense {a['dense_lr']:.1e} (seed spread "
      f"{a['dense_seed_spread']:.3f}), MoE {a['moe_lr']:.1e} (spread "
      f"{a['moe_seed_spread']:.3f}); effects under {noise:.3f} (twice the larger spread) count "
      "as noise.",
      "Learning rate: MoE - dense at the same rate is " + ", ".join(
          f"{_delta(g)} at {lr:.1e}" for lr, g in sorted(gaps.items())) +
      f"; at each one's chosen rate {_delta(best_gap)}. No rate in the grid closes the gap."
      if min(gaps.values()) > noise else
      "Learning rate: MoE - dense at the same rate is " + ", ".join(
          f"{_delta(g)} at {lr:.1e}" for lr, g in sorted(gaps.items())) + "."]


def diagnosis(result) -> list[str]:
  """One bullet per candidate cause, each with the numbers that decide it."""
  a, m = result["ablations"], result["main"]["runs"]
  noise, ref = _noise(result), a["moe_reference"]
  out = seeds_and_rates(result)
  for r in a["moe_variants"]:
    d = r["heldout_loss"] - ref["heldout_loss"]
    out.append(f"{r['change']}: {_delta(d)} vs the MoE reference ({_effect(d, noise)}).")
  if a["big_batch"]:
    dense_b, moe_b = (r["heldout_loss"] for r in a["big_batch"])
    out.append(f"Batch: at twice the batch for half the steps (twice the tokens per expert "
               f"per step) MoE - dense = {_delta(moe_b - dense_b)}, against "
               f"{_delta(ref['heldout_loss'] - a['dense_reference']['heldout_loss'])} at the "
               "base batch.")
  ev_moe, ev_dense = m["moe"]["curve"]["eval_loss"], m["dense"]["curve"]["eval_loss"]
  if len(ev_moe) > 1:
    out.append(f"Budget: along the main runs the MoE - dense held-out gap goes "
               f"{_delta(ev_moe[0] - ev_dense[0])} -> {_delta(ev_moe[-1] - ev_dense[-1])} "
               f"from the first to the last evaluation ({len(ev_moe)} points).")
  gain = m["dense"]["heldout_loss"] - m["dense_equal_total"]["heldout_loss"]
  out.append(f"Capacity: the dense model with the MoE's total parameters "
             f"({m['dense_equal_total']['total_params'] / 1e6:.2f}M vs "
             f"{m['dense']['total_params'] / 1e6:.2f}M) is {gain:.3f} nats better than "
             "`tiny`: extra parameters do pay at this budget when every token trains them.")
  shifted = m["moe"].get("heldout_shifted_experts")
  if shifted is not None:
    out.append(f"Specialisation: sending every token of the trained main MoE to the experts "
               f"after its chosen ones raises its held-out loss "
               f"{m['moe']['heldout_loss']:.3f} -> {shifted:.3f} "
               f"({_delta(shifted - m['moe']['heldout_loss'])}): that is what the learned "
               "assignment is worth.")
  return out


def bug_note(result) -> list[str]:
  """The top-1 routing bug, with the two top-1 runs that show it."""
  runs = {r["label"]: r for r in result["ablations"]["moe_variants"]}
  if not {"top1_full", "top1_switch_gate"} <= set(runs):
    return []
  lib, fixed = runs["top1_full"], runs["top1_switch_gate"]
  return [
      "**Library bug (top_k = 1).** `route` in llm/model/moe_routing.py (line 44) always "
      "renormalises the chosen probabilities, so with top_k = 1 every weight is exactly 1.0 "
      "and the router gets no gradient from the language-model loss; only the balance and "
      "z-losses move it, and neither rewards an assignment that lowers the loss. Measured: "
      "top-1 with the library's routing keeps router entropy "
      f"{lib['router']['entropy_first']:.3f} -> "
      f"{lib['router']['entropy_last']:.3f} (ln 8 = 2.079) and reaches "
      f"{lib['heldout_loss']:.3f}; weighting by the router probability as Switch does "
      f"(the only change) gives {fixed['router']['entropy_first']:.3f} -> "
      f"{fixed['router']['entropy_last']:.3f} and {fixed['heldout_loss']:.3f}. Fix: "
      "renormalise only when top_k > 1 (`weights = top / top.sum(-1, keepdims=True) if "
      "top_k > 1 else top`), or add a `moe.normalize_top_k` field (Switch: off, Mixtral: on). "
      "It does not affect `moe_tiny` (top-2)."]


def verdict(result) -> str:
  m, noise = result["main"]["runs"], _noise(result)
  gap = m["moe"]["heldout_loss"] - m["dense"]["heldout_loss"]
  total_gap = m["moe"]["heldout_loss"] - m["dense_equal_total"]["heldout_loss"]
  return (f"**Verdict: {_verdict_word(gap, noise)}** at equal active parameters: best MoE "
          f"{m['moe']['heldout_loss']:.4f} vs tuned dense {m['dense']['heldout_loss']:.4f} "
          f"({_delta(gap)} nats after {m['dense']['train_tokens']:,} tokens; noise "
          f"{noise:.3f}). Against the dense model with equal total parameters the MoE is "
          f"{_delta(total_gap)} (expected >= 0 by the papers' own accounting).")


def routing_health(result) -> str:
  """The reference MoE's routing: does the router learn, is the load balanced, any drops."""
  r = result["ablations"]["moe_reference"]["router"]
  learns = ("the router starts near uniform and learns" if r["entropy_last"] <
            r["entropy_first"] - 0.05 else "the router barely moves from uniform")
  return (f"Routing in the reference MoE: router entropy "
          f"{r['entropy_first']:.3f} -> {r['entropy_last']:.3f} (ln 8 = 2.079 is uniform: "
          f"{learns}), balance loss {r['load_balance']:.3f} "
          f"(1.0 = perfectly balanced), busiest expert {r['max_load_ratio']:.2f}x the mean "
          f"load, dropped fraction {r['dropped_fraction']:.3f} (dropless), z-loss "
          f"{r['z_loss']:.2f} (x 0.001 in the loss).")


def earlier(result) -> list[str]:
  e = result.get("earlier_study") or {}
  if not e:
    return []
  return [f"The earlier study (experiments/moe_vs_dense.py, {e['steps']} steps, lr 3e-3 for "
          f"both) measured MoE {e['moe']:.3f} vs dense {e['dense']:.3f} "
          f"({_delta(e['moe'] - e['dense'])})."]


def markdown(result, notes: list[str] | None = None) -> str:
  """The results section; `notes` are extra diagnosis bullets (e.g. from reading the code)."""
  a = result["ablations"]
  lines = [HEADING, "", f"`{result['command']}` ({result['wall_seconds']:.0f} s on this "
           "machine; held-out loss is the cross-entropy over all held-out rows)", "",
           f"**Published claim.** {CLAIM}", "", "**Our measurement.**", ""]
  lines += main_table(result) + ["", "Held-out loss (eval batches) along the main runs:", ""]
  lines += curve_table(result)
  lines += ["", f"**Ablations** ({a['steps']} steps, {a['moe_reference']['train_tokens']:,} "
            f"tokens each; MoE changes at the MoE's chosen rate {a['moe_reference']['lr']:.1e})",
            ""] + ablation_table(result)
  bullets = (earlier(result) + [routing_health(result), CODE_CHECKS] + bug_note(result) +
             diagnosis(result))
  lines += ["", "**Diagnosis.**", ""] + [f"- {d}" for d in bullets + (notes or [])]
  lines += ["", verdict(result), ""]
  return "\n".join(lines)


def plot(result, path: str) -> None:
  """Loss vs training tokens for the main runs; held-out change per ablation beside it."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from llm.io import save_figure_atomic
  fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
  for (key, name), color in zip(SHORT_NAMES.items(), ("C0", "C3", "C2")):
    c = result["main"]["runs"][key]["curve"]
    left.plot(c["train_tokens"], c["train_loss"], color=color, alpha=0.6, label=f"{name} (train)")
    left.plot(c["eval_tokens"], c["eval_loss"], "o--", color=color, label=f"{name} (held-out)")
  left.set(xlabel="training tokens", ylabel="cross-entropy (nats)", title="loss vs tokens")
  left.set_ylim(top=min(7.5, left.get_ylim()[1]))
  left.legend(fontsize=7)
  rows = ablation_rows(result)
  ref = result["ablations"]["moe_reference"]["heldout_loss"]
  deltas = [r["heldout_loss"] - ref for r in rows]
  right.barh(range(len(rows)), deltas,
             color=["C0" if "dense" in r["change"] else "C3" for r in rows])
  right.set_yticks(range(len(rows)), [r["label"] for r in rows], fontsize=7)
  right.axvspan(-_noise(result), _noise(result), color="0.85", zorder=0, label="seed noise")
  right.axvline(0, color="k", lw=0.8)
  right.set(xlabel="held-out loss minus the MoE reference (nats)",
            title=f"ablations, {result['ablations']['steps']} steps")
  right.legend(fontsize=7)
  fig.tight_layout()
  save_figure_atomic(fig, path)

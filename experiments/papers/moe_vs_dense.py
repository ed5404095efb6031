"""Mixture of experts vs dense (Switch Transformer, Fedus et al. 2021; Mixtral, Jiang et al.
2024) at equal active and at equal total parameters, with the ablations that explain the gap.

  python experiments/papers/moe_vs_dense.py [--scale N] [--quick]

1. Ablations (`ablation_steps`): a learning-rate grid for `tiny` and `moe_tiny`, then, at the
   MoE's best rate, one change at a time (load-balance weight, z-loss, capacity with drops,
   Switch-style top-1 full-width experts, top-k weights summing to k), a second seed, and
   both models at twice the batch for half the steps.
2. Main (`main_steps`): dense at its best rate, the best MoE found, and a dense model with the
   MoE's total parameters (an MLP as wide as all experts together), held-out loss on the way.
Writes experiments/papers/results/moe_vs_dense.{json,png,md}. `--scale` multiplies the steps
(for accelerators); `--quick` is a smoke run of a few steps whose results stay in the workdir;
`--report-only` rewrites the markdown and figure from the JSON.
"""

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time

import jax.numpy as jnp

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from experiments.papers.moe_report import markdown, plot  # noqa: E402
from llm.config import load_experiment  # noqa: E402
from llm.data.prepare import prepare_lm_data  # noqa: E402
from llm.io import write_json_atomic, write_text_atomic  # noqa: E402
from llm.model import moe_routing  # noqa: E402
from llm.train.flops import parameter_counts  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402
from llm.train.perplexity import model_perplexity  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
EARLIER = os.path.join(os.path.dirname(RESULTS), "..", "results", "moe_vs_dense.json")
LR_FACTORS = (0.5, 1.0, 2.0)
MAIN_EVALS = 6  # held-out points along each main run
# not config fields: routing changes made by patched_routing
WEIGHT_SCALE, SWITCH_GATE = "study.routing_weight_scale", "study.switch_gate"
SHIFT = "study.shift_experts"


def equal_total_mlp_dim(model_config, multiple: int = 32) -> int:
  """The dense MLP width whose parameters match all experts' plus the router's (per layer),
  rounded to `multiple`; every layer is assumed MoE (moe.every == 1)."""
  moe, d_model = model_config.moe, model_config.d_model
  expert = moe.expert_mlp_dim or model_config.mlp_dim
  per_layer = moe.num_experts * 3 * d_model * expert + d_model * moe.num_experts
  return max(multiple, round(per_layer / (3 * d_model) / multiple) * multiple)


def moe_variants(top_k: int) -> list[tuple[str, str, dict]]:
  """(label, what changes, overrides) for the one-at-a-time MoE ablations."""
  full_top1 = {"model.moe.top_k": 1, "model.moe.expert_mlp_dim": 0}
  return [
      ("no_balance", "load-balance loss off", {"model.moe.load_balance_coef": 0.0}),
      ("balance_x10", "load-balance weight x10 (0.1)", {"model.moe.load_balance_coef": 0.1}),
      ("no_z_loss", "router z-loss off", {"model.moe.z_loss_coef": 0.0}),
      ("capacity_1.0", "capacity mode, factor 1.0 (drops tokens)",
       {"model.moe.mode": "capacity", "model.moe.capacity_factor": 1.0}),
      ("top1_full", "top-1 of 8 full-width experts (equal active), library routing",
       full_top1),
      ("top1_switch_gate", "top-1 of 8 full-width experts weighted by the router probability "
       "(Switch)", dict(full_top1, **{SWITCH_GATE: True})),
      ("shared_top1", "one always-on expert + top-1 of 8 routed, Switch weights (equal "
       "active)", {"model.moe.shared_experts": 1, "model.moe.top_k": 1, SWITCH_GATE: True}),
      ("weights_sum_k", f"top-k weights summed to {top_k}, not 1 (expert outputs added like "
       "a dense MLP's halves)", {WEIGHT_SCALE: float(top_k)}),
  ]


@contextlib.contextmanager
def patched_routing(overrides: dict):
  """Changes the top-k routing weights while traced inside, for the two study-only keys.

  WEIGHT_SCALE multiplies the renormalised weights: with top-2 half-width experts they sum
  to one, so a token's MoE output is about half of what a dense MLP with the same units
  would add to the residual stream (and so is each update's effect on it).
  SWITCH_GATE weights each chosen expert by its softmax probability, not renormalised: with
  top-1 the renormalised weight is always 1 and the router gets no gradient from the loss.
  SHIFT sends each token to the experts after its chosen ones (mod E), same weights: on a
  trained model, the loss this adds is what the learned assignment is worth."""
  scale, switch = overrides.get(WEIGHT_SCALE, 1.0), overrides.get(SWITCH_GATE, False)
  shift = overrides.get(SHIFT, 0)
  if scale == 1.0 and not switch and not shift:
    yield
    return
  original = moe_routing.route

  def route(*args, **kwargs):
    routing = original(*args, **kwargs)
    weights = (jnp.take_along_axis(routing.probs, routing.experts, axis=-1) if switch
               else routing.weights)
    experts = (routing.experts + shift) % routing.probs.shape[-1]
    return routing._replace(weights=weights * scale, experts=experts)

  moe_routing.route = route
  try:
    yield
  finally:
    moe_routing.route = original


def apply_overrides(config, overrides: dict):
  """Sets dotted fields ("model.moe.top_k") on a ConfigDict; returns it."""
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def configure(base: str, overrides: dict, steps: int, seed: int, evals: int):
  config = load_experiment(base)
  apply_overrides(config, {k: v for k, v in overrides.items() if not k.startswith("study.")})
  config.seed = seed
  config.train.steps, config.train.progress = steps, False
  config.train.eval_every = max(1, steps // evals)
  # smoke runs are shorter than the configured warmup, which validation rejects
  config.optim.warmup_steps = min(config.optim.warmup_steps, max(1, steps // 4))
  config.checkpoint.every_steps = steps  # every run starts from scratch: no need to resume
  return config


def curve(history: list[dict], tokens_per_step: int, window: int) -> dict:
  """Train cross-entropy (without auxiliary losses) averaged over `window` steps, and every
  evaluation point, against training tokens."""
  train_tokens, train_loss, eval_tokens, eval_loss = [], [], [], []
  for start in range(0, len(history) - window + 1, window):
    chunk = history[start:start + window]
    train_tokens.append(chunk[-1]["step"] * tokens_per_step)
    train_loss.append(sum(h.get("lm_loss", h["loss"]) for h in chunk) / window)
  for h in history:
    if "eval_loss" in h:
      eval_tokens.append(h["step"] * tokens_per_step)
      eval_loss.append(h["eval_loss"])
  return {"train_tokens": train_tokens, "train_loss": train_loss,
          "eval_tokens": eval_tokens, "eval_loss": eval_loss}


def train_one(label: str, base: str, overrides: dict, steps: int, where: dict, seed: int = 0,
              evals: int = 1, probe: bool = False) -> dict:
  """Trains one config from scratch in where["runs"]/label on the data prepared in
  where["data"]; returns its numbers (held-out loss over all held-out rows; with `probe`,
  also with every token sent to the next experts instead of its chosen ones)."""
  config = configure(base, overrides, steps, seed, evals)
  _, train_rows, heldout = prepare_lm_data(config.data, where["data"])
  run_dir = os.path.join(where["runs"], label)
  shutil.rmtree(run_dir, ignore_errors=True)  # a leftover checkpoint would resume, not restart
  task = LMTask(config, train_rows, heldout)
  started = time.perf_counter()
  with patched_routing(overrides):
    result = train(config, task, run_dir)
    model = task.model(result["state"]["params"], result["frozen"])
    heldout_loss = model_perplexity(model, heldout, config.train.batch_size)["loss"]
  seconds = time.perf_counter() - started
  shifted = None
  if probe:
    with patched_routing(dict(overrides, **{SHIFT: 1})):
      shifted = model_perplexity(model, heldout, config.train.batch_size)["loss"]
  last = result["history"][-1]
  tokens_per_step = config.train.batch_size * config.data.seq_len
  counts = parameter_counts(config.model)
  record = {"label": label, "base": base, "overrides": overrides, "seed": seed, "steps": steps,
            "lr": config.optim.lr, "batch_size": config.train.batch_size,
            "train_tokens": steps * tokens_per_step, "heldout_loss": heldout_loss,
            "final_train_loss": last.get("lm_loss", last["loss"]), "seconds": seconds,
            "incidents": result["incidents"], "total_params": counts["total"],
            "active_params": counts["active"],
            "curve": curve(result["history"], tokens_per_step, max(1, steps // 40)),
            "router": _router_stats(result["history"]), "heldout_shifted_experts": shifted}
  print(f"  {label:<24} held-out {heldout_loss:.4f}  train {record['final_train_loss']:.4f}"
        f"  {seconds:4.0f}s", flush=True)
  return record


def _router_stats(history: list[dict]) -> dict:
  """Router entropy at the first and last step, and the last step's load and drop figures."""
  if "moe/router_entropy" not in history[0]:
    return {}
  first, last = history[0], history[-1]
  return {"entropy_first": first["moe/router_entropy"], "entropy_last": last["moe/router_entropy"],
          "max_load_ratio": last["moe/max_load_ratio"],
          "dropped_fraction": last["moe/dropped_fraction"],
          "load_balance": last["moe/load_balance"], "z_loss": last["moe/z_loss"]}


def best(records: list[dict]) -> dict:
  return min(records, key=lambda r: r["heldout_loss"])


def lr_grid(base: str, steps: int, where: dict, quick: bool) -> list[dict]:
  """The config's rate times LR_FACTORS, seed 0."""
  lr = load_experiment(base).optim.lr
  return [train_one(f"{base}_lr{lr * f:.1e}", base, {"optim.lr": lr * f}, steps, where)
          for f in ((1.0,) if quick else LR_FACTORS)]


def choose_rate(grid: list[dict], steps: int, where: dict, quick: bool):
  """Seed 1 at the grid's two best rates; returns (the rate with the lower two-seed mean,
  the seed-1 runs, that rate's seed spread)."""
  top = sorted(grid, key=lambda r: r["heldout_loss"])[:1 if quick else 2]
  repeats = [train_one(f"{r['label']}_seed1", r["base"], r["overrides"], steps, where, seed=1)
             for r in top]
  mean = {r["lr"]: (r["heldout_loss"] + s["heldout_loss"]) / 2 for r, s in zip(top, repeats)}
  rate = min(mean, key=mean.get)
  spread = next(abs(r["heldout_loss"] - s["heldout_loss"])
                for r, s in zip(top, repeats) if r["lr"] == rate)
  return rate, repeats, spread


def ablations(steps: int, where: dict, quick: bool) -> dict:
  """Learning-rate grids (a rate chosen on two seeds), the MoE changes at the MoE's rate, and
  both models at twice the batch for half the steps (equal tokens)."""
  print(f"ablations: {steps} steps each", flush=True)
  out = {"steps": steps}
  for name, base in (("dense", "tiny"), ("moe", "moe_tiny")):
    grid = lr_grid(base, steps, where, quick)
    rate, repeats, spread = choose_rate(grid, steps, where, quick)
    out.update({f"{name}_lr_grid": grid, f"{name}_seed1": repeats, f"{name}_lr": rate,
                f"{name}_seed_spread": spread,
                f"{name}_reference": next(r for r in grid if r["lr"] == rate)})
  at_rate = {"optim.lr": out["moe_lr"]}
  variants = moe_variants(load_experiment("moe_tiny").model.moe.top_k)[:1 if quick else None]
  out["moe_variants"] = [
      dict(train_one(label, "moe_tiny", dict(o, **at_rate), steps, where), change=change)
      for label, change, o in variants]
  batch = load_experiment("tiny").train.batch_size * 2
  warmup = max(1, load_experiment("tiny").optim.warmup_steps // 2)
  out["big_batch"] = [] if quick else [
      train_one(f"{base}_batch{batch}", base, {"optim.lr": out[f"{name}_lr"],
                                               "train.batch_size": batch,
                                               "optim.warmup_steps": warmup},
                steps // 2, where)
      for name, base in (("dense", "tiny"), ("moe", "moe_tiny"))]
  out["seed_spread"] = max(out["dense_seed_spread"], out["moe_seed_spread"])
  return out


def main_comparison(found: dict, steps: int, where: dict) -> dict:
  """Dense at its best rate, the best MoE found, and dense with the MoE's total parameters."""
  dense_lr = found["dense_lr"]
  moe_pick = best([found["moe_reference"]] + found["moe_variants"])
  moe_overrides = dict(moe_pick["overrides"], **{"optim.lr": moe_pick["lr"]})
  wide = equal_total_mlp_dim(load_experiment("moe_tiny").model)
  print(f"main: {steps} steps each; MoE {moe_overrides}; equal-total dense mlp_dim {wide}",
        flush=True)
  runs = {
      "dense": train_one("main_dense", "tiny", {"optim.lr": dense_lr}, steps, where,
                         evals=MAIN_EVALS),
      "moe": train_one("main_moe", "moe_tiny", moe_overrides, steps, where, evals=MAIN_EVALS,
                       probe=True),
      "dense_equal_total": train_one("main_dense_wide", "tiny",
                                     {"optim.lr": dense_lr, "model.mlp_dim": wide}, steps,
                                     where, evals=MAIN_EVALS)}
  return {"steps": steps, "moe_settings": moe_overrides, "moe_pick": moe_pick["label"],
          "equal_total_mlp_dim": wide, "runs": runs}


def earlier_study() -> dict:
  """The 1200-step result of experiments/moe_vs_dense.py, when its JSON is present."""
  if not os.path.exists(EARLIER):
    return {}
  with open(EARLIER, encoding="utf-8") as f:
    runs = json.load(f)["runs"]
  return {"steps": runs["tiny"]["steps"], "dense": runs["tiny"]["heldout"]["loss"],
          "moe": runs["moe_tiny"]["heldout"]["loss"]}


def write_outputs(result: dict, results_dir: str) -> str:
  stem = os.path.join(results_dir, "moe_vs_dense")
  result["markdown"] = text = markdown(result)
  write_json_atomic(stem + ".json", result, indent=1)
  write_text_atomic(stem + ".md", text)
  plot(result, stem + ".png")
  return text


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/papers/moe_vs_dense")
  parser.add_argument("--results", default="", help=f"default {RESULTS} (--quick: the workdir)")
  parser.add_argument("--ablation-steps", type=int, default=150)
  parser.add_argument("--main-steps", type=int, default=600)
  parser.add_argument("--scale", type=float, default=1.0, help="multiplies both step counts")
  parser.add_argument("--quick", action="store_true", help="a few steps, fewer runs")
  parser.add_argument("--report-only", action="store_true",
                      help="rewrite the markdown and figure from the saved JSON")
  args = parser.parse_args()
  logging.basicConfig(level=logging.WARNING)
  # a smoke run shares the prepared data but never the runs or the published results
  where = {"data": args.workdir, "runs": os.path.join(args.workdir, "quick" if args.quick else "")}
  args.results = args.results or (os.path.join(where["runs"], "results") if args.quick else RESULTS)
  if args.report_only:
    with open(os.path.join(args.results, "moe_vs_dense.json"), encoding="utf-8") as f:
      print(write_outputs(json.load(f), args.results))
    return
  ablation_steps, main_steps = (8, 12) if args.quick else (
      round(args.ablation_steps * args.scale), round(args.main_steps * args.scale))
  started = time.perf_counter()
  result = {"command": " ".join(["python experiments/papers/moe_vs_dense.py"] + sys.argv[1:]),
            "quick": args.quick, "scale": args.scale, "earlier_study": earlier_study()}
  result["ablations"] = ablations(ablation_steps, where, args.quick)
  result["main"] = main_comparison(result["ablations"], main_steps, where)
  result["wall_seconds"] = time.perf_counter() - started
  print(write_outputs(result, args.results), flush=True)
  print(f"wrote {args.results}/moe_vs_dense.{{json,md,png}} in {result['wall_seconds']:.0f}s",
        flush=True)


if __name__ == "__main__":
  main()

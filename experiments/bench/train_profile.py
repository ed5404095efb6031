"""Profiles one train step of ours (JAX) and of HF transformers (PyTorch) on the same shapes.

For each config and precision: our step's per-op time from a `jax.profiler` trace, by model
part, phase (forward/backward/update) and matmul vs other (hlo_profile.py); HF's step from
`torch.profiler`, by phase and op class (torch_profile.py).

  python experiments/bench/train_profile.py --json experiments/bench/results/train_profile_cpu.json
"""

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import jax.numpy as jnp  # noqa: E402

from experiments.bench import hlo_profile, torch_profile  # noqa: E402
from experiments.bench.train_step import (jax_step_runner, machine_info, make_rows,  # noqa: E402
                                          prepare_config)
from llm.config import load_experiment  # noqa: E402
from llm.io import write_json_atomic, write_text_atomic  # noqa: E402
from llm.runtime import rerun_with_hugepages  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True)
  p.add_argument("--runs", default="tiny:float32,small:float32,small:bfloat16",
                 help="config:compute_dtype pairs")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq_len", type=int, default=512)
  p.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 warm-up steps)")
  p.add_argument("--skip_hf", action="store_true")
  return p.parse_args(argv)


def profile_ours(config, rows, steps: int) -> dict:
  run, ctx = jax_step_runner(config, rows)
  for _ in range(2):
    run()
  args = (ctx["state"], ctx["frozen"], ctx["batch"], jnp.float32(1.0))
  return hlo_profile.profile_jitted(ctx["step"].jitted, args, run, steps)


def profile_hf(config, rows, steps: int, autocast: bool) -> dict:
  import numpy as np
  import torch
  from transformers import LlamaForCausalLM

  from experiments.bench.train_step import hf_llama_config
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count())
  model = LlamaForCausalLM(hf_llama_config(config.model, config.data.seq_len)).train()
  o = config.optim
  opt = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=(o.b1, o.b2), eps=o.eps,
                          weight_decay=o.weight_decay)
  ids = torch.from_numpy(rows["inputs"].astype(np.int64))
  out = torch_profile.profile_hf_step(model, ids, opt, o.clip_norm, autocast, steps)
  return dict(out, autocast="bfloat16" if autocast else None, threads=torch.get_num_threads())


PARTS = ("attention", "qkvo_proj", "mlp", "embed_and_head", "cross_entropy", "norm", "rope",
         "optimizer", "other")


def markdown_summary(results: dict) -> str:
  """Per run: our op time by part (matmul / other) and HF's by op class, ms per step."""
  lines = []
  for run, entry in results["runs"].items():
    ours = entry["ours"]
    split = ours["by_part_and_kind_ms"]
    total = ours["op_ms_sum"]
    cells = []
    for part in PARTS:
      mm, other = split.get(f"{part}/matmul", 0.0), split.get(f"{part}/other", 0.0)
      if part == "other":
        named = {f"{p}/{k}" for p in PARTS[:-1] for k in ("matmul", "other")}
        other = sum(v for k, v in split.items() if k not in named) - mm
      cells.append(f"{part} {mm + other:.0f} ({100 * (mm + other) / total:.0f}%)")
    lines.append(f"**{run}**: ours {ours['step_wall_ms']:.0f} ms/step wall, {total:.0f} ms of "
                 f"op time (matmul {ours['by_kind_ms'].get('matmul', 0):.0f}, other "
                 f"{ours['by_kind_ms'].get('other', 0):.0f}): " + ", ".join(cells) + ".")
    if "hf" in entry:
      hf = entry["hf"]
      classes = ", ".join(f"{k} {v:.0f}" for k, v in hf["by_class_ms"].items() if v >= 1)
      phases = ", ".join(f"{k} {v:.0f}" for k, v in hf["by_phase_ms"].items())
      lines.append(f"HF {hf['step_wall_ms']:.0f} ms/step under the profiler; by op class "
                   f"{classes}; by phase {phases}.")
    lines.append("")
  return "\n".join(lines)


def main(argv=None):
  rerun_with_hugepages()
  args = parse_args(argv)
  results = {"machine": machine_info(), "settings": vars(args), "runs": {}}
  for item in args.runs.split(","):
    name, dtype = item.split(":")
    config = prepare_config(load_experiment(name), args.batch, args.seq_len, dtype, "config")
    rows = make_rows(config.model.vocab_size, args.batch, args.seq_len)
    print(f"profiling {name} {dtype} ...", flush=True)
    entry = {"ours": profile_ours(config, rows, args.steps)}
    if not args.skip_hf:
      entry["hf"] = profile_hf(config, rows, args.steps, autocast=dtype == "bfloat16")
    results["runs"][item] = entry
    write_json_atomic(args.json, results, indent=2)
    write_text_atomic(os.path.splitext(args.json)[0] + ".md", markdown_summary(results))
    for impl, r in entry.items():
      print(f"  {impl}: {r['step_wall_ms']:.0f} ms/step; " +
            ", ".join(f"{k} {v:.0f}" for k, v in
                      list(r.get("by_part_ms", r.get("by_class_ms")).items())[:8]))
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

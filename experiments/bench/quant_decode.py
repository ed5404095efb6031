"""What quantized weights cost and save when serving SmolLM2-135M on this machine: decode
tokens/s of the engine with float32, int8 and int4 weights (round to nearest, groups of 128:
speed does not depend on how the codes were chosen), in turn, several times; bytes held in
memory and written on disk against float32 and bfloat16.

On CPUs the quantized projections go through XLA, which dequantizes each weight to float32
inside the step before the matmul; the Pallas kernel that reads the codes in the matmul runs
on GPUs only.

  python experiments/bench/quant_decode.py --json experiments/bench/results/quant_decode_cpu.json
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from experiments.bench.serving import engine_generate, same_length_prompts  # noqa: E402
from experiments.bench.versions import library_versions, machine  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.quant.checkpoint import save_quantized  # noqa: E402
from llm.quant.model_quant import parse_settings, quantize_model  # noqa: E402
from llm.quant.quantized import memory_bytes  # noqa: E402
from llm.serve.engine import Engine, EngineConfig  # noqa: E402
from llm.serve.models import load_served_model  # noqa: E402

VARIANTS = {"float32": "", "int8": "rtn:8:128", "int4": "rtn:4:128"}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True)
  p.add_argument("--batches", default="1,16")
  p.add_argument("--new_tokens", type=int, default=32)
  p.add_argument("--repeats", type=int, default=3, help="timed runs of every variant, in turn")
  return p.parse_args(argv)


def disk_bytes(params, model_config: dict) -> int:
  with tempfile.TemporaryDirectory() as tmp:
    folder = save_quantized(os.path.join(tmp, "q"), params, model_config, "")
    return sum(f.stat().st_size for f in pathlib.Path(folder).iterdir())


def main(argv=None):
  args = parse_args(argv)
  served = load_served_model("smollm2")
  float_model = served.loaded.model()
  engines, sizes = {}, {}
  for name, spec in VARIANTS.items():
    params = (quantize_model(float_model, None, parse_settings(spec), log_every=0)[0]
              if spec else served.params)
    engines[name] = Engine(served.graphdef, params, served.model_config, served.tokenizer,
                           EngineConfig(num_blocks=512), eos_ids=served.stop_ids)
    sizes[name] = dict(memory_bytes(params),
                       disk=disk_bytes(params, served.loaded.model_config.to_dict()))
    print(name, sizes[name], flush=True)
  decode = {}
  for batch in [int(b) for b in args.batches.split(",")]:
    prompts = same_length_prompts(served.tokenizer, batch)
    tokens = {name: engine_generate(e, prompts, args.new_tokens)[0]  # compiles
              for name, e in engines.items()}
    runs = {name: [] for name in engines}
    for _ in range(args.repeats):
      for name, engine in engines.items():
        seconds = engine_generate(engine, prompts, args.new_tokens)[1]
        runs[name].append(batch * args.new_tokens / seconds)
    row = {name: {"tokens_per_s_median": statistics.median(r), "runs": r}
           for name, r in runs.items()}
    for name in ("int8", "int4"):
      row[name]["speed_vs_float32"] = (row[name]["tokens_per_s_median"]
                                       / row["float32"]["tokens_per_s_median"])
      row[name]["greedy_tokens_equal_to_float32"] = sum(
          a == b for seq_a, seq_b in zip(tokens[name], tokens["float32"])
          for a, b in zip(seq_a, seq_b)) / (batch * args.new_tokens)
    decode[f"batch_{batch}"] = row
    print(f"batch {batch}: {row}", flush=True)
  write_json_atomic(args.json, {
      "model": "SmolLM2-135M-Instruct", "variants": VARIANTS, "new_tokens": args.new_tokens,
      "bytes": sizes, "decode": decode, "versions": library_versions(), "machine": machine()},
      indent=2)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

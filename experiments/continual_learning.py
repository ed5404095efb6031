"""Continual learning with experts: forgetting on the old data and gain on the new, by method.

  python experiments/continual_learning.py --workdir runs/continual --json OUT.json

An 8-expert top-2 `moe_tiny` model is pretrained on the packaged Shakespeare (the old data),
then trained on Python standard-library source (the new data) for the same number of steps in
each of four ways, all on the one training loop:
- full:        every parameter trains on the new data;
- replay:      every parameter trains on the new data mixed with `--replay_share` old text;
- new_experts: 4 experts are added (copies of existing ones, fresh router columns); only the
               new experts and the router train (`train.trainable`), the old experts and
               everything else stay frozen;
- side:        a side SwiGLU adapter per block (output zero at the start) trains, the base
               model is frozen.
Reported per method: held-out loss on old and new data before and after, forgetting (old loss
after - before), gain (new loss before - after) and the trained parameter count.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import numpy as np  # noqa: E402

from llm.config import load_experiment  # noqa: E402
from llm.data.curation.heldout import is_heldout  # noqa: E402
from llm.data.curation.sources import load_documents  # noqa: E402
from llm.data.tokenize_pack import PackSettings, PackedRows, tokenize_and_pack  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.train.perplexity import model_perplexity  # noqa: E402
from llm.model.upcycle import grow  # noqa: E402
from llm.tokenizer.sentencepiece_tokenizer import train_tokenizer  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402
from llm.train.partition import count, merge  # noqa: E402

METHODS = {  # method -> (model overrides, train.trainable)
    "full": ({}, ""),
    "replay": ({}, ""),
    "new_experts": ({"new_experts": 4}, "new_gate,new_up,new_down,router"),
    "side": ({"side_adapter_dim": 128}, "side"),
}


def split_documents(source: str, max_chars: int) -> tuple[list[str], list[str]]:
  docs = load_documents(source, max_chars)
  train = [d["text"] for d in docs if not is_heldout(d["id"], 0.05)]
  heldout = [d["text"] for d in docs if is_heldout(d["id"], 0.05)]
  return train, heldout


def pack(texts, tokenizer_path, folder, seq_len) -> PackedRows:
  if not os.path.exists(os.path.join(folder, "packed.json")):
    tokenize_and_pack(texts, tokenizer_path, folder, PackSettings(seq_len), shards=4, workers=2)
  return PackedRows(folder)


def prepare(workdir: str, seq_len: int, vocab: int, replay_share: float, max_chars: int):
  old_train, old_heldout = split_documents("shakespeare", max_chars)
  new_train, new_heldout = split_documents("python_stdlib", max_chars)
  tok = os.path.join(workdir, "tokenizer.model")
  if not os.path.exists(tok):
    train_tokenizer(old_train + new_train, vocab, tok)
  rng = np.random.default_rng(0)
  replay_chars = replay_share / (1 - replay_share) * sum(map(len, new_train))
  replay, chars = [], 0
  for i in rng.permutation(len(old_train)):
    if chars >= replay_chars:
      break
    replay.append(old_train[i])
    chars += len(old_train[i])
  folders = {"old": old_train, "new": new_train, "replay": new_train + replay,
             "old_heldout": old_heldout, "new_heldout": new_heldout}
  return {name: pack(texts, tok, os.path.join(workdir, name), seq_len)
          for name, texts in folders.items()}


def config_for(method: str, steps: int, lr: float):
  config = load_experiment("moe_tiny")
  overrides, trainable = METHODS.get(method, ({}, ""))
  for key, value in overrides.items():
    target = config.model.moe if key == "new_experts" else config.model
    target[key] = value
  config.train.steps, config.train.trainable, config.train.progress = steps, trainable, False
  config.train.eval_every = 0
  config.optim.lr, config.optim.warmup_steps = lr, min(20, steps)
  return config


def evaluate(task, params, frozen, data) -> dict:
  model = task.model(params, frozen)
  return {split: model_perplexity(model, data[f"{split}_heldout"].to_arrays(), 16)["loss"]
          for split in ("old", "new")}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="runs/continual")
  parser.add_argument("--json", required=True)
  parser.add_argument("--base_steps", type=int, default=600)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--replay_share", type=float, default=0.2)
  parser.add_argument("--max_chars", type=int, default=1_500_000)
  args = parser.parse_args()
  logging.basicConfig(level=logging.WARNING)
  os.makedirs(args.workdir, exist_ok=True)
  base_config = config_for("base", args.base_steps, 3e-3)
  data = prepare(args.workdir, base_config.data.seq_len, base_config.data.tokenizer_vocab_size,
                 args.replay_share, args.max_chars)
  base_task = LMTask(base_config, data["old"])
  base = train(base_config, base_task, os.path.join(args.workdir, "base"))
  base_params = merge(base["state"]["params"], base["frozen"])
  before = evaluate(base_task, base_params, {}, data)
  print(f"base after {args.base_steps} steps on old data: {before}", flush=True)
  result = {"settings": vars(args), "before": before, "methods": {}}
  for method in METHODS:
    config = config_for(method, args.steps, args.lr)
    init = grow(base_params, config.model) if METHODS[method][0] else base_params
    task = LMTask(config, data["replay" if method == "replay" else "new"], init_params=init)
    run = train(config, task, os.path.join(args.workdir, method))
    after = evaluate(task, run["state"]["params"], run["frozen"], data)
    trained = count(run["state"]["params"])
    result["methods"][method] = {
        "after": after, "forgetting": after["old"] - before["old"],
        "gain": before["new"] - after["new"], "trained_params": trained,
        "total_params": trained + count(run["frozen"])}
    print(f"{method}: {result['methods'][method]}", flush=True)
  print(f"\n| method | trained params | old loss (before {before['old']:.3f}) | forgetting | "
        f"new loss (before {before['new']:.3f}) | gain |\n|---|---|---|---|---|---|")
  for method, r in result["methods"].items():
    print(f"| {method} | {r['trained_params']:,} of {r['total_params']:,} | {r['after']['old']:.3f} |"
          f" {r['forgetting']:+.3f} | {r['after']['new']:.3f} | {r['gain']:+.3f} |")
  write_json_atomic(args.json, result, indent=2)


if __name__ == "__main__":
  main()

"""Tokenization throughput: tokens/s for tokenize-and-pack (llm.data.tokenize_pack) with 1 and
N processes on the packaged real text, in one run.

  python experiments/bench/tokenization.py --json OUT.json [--chars_per_source N]
"""

import argparse
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from llm.data.curation.sources import load_documents  # noqa: E402
from llm.data.tokenize_pack import PackSettings, tokenize_and_pack  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.tokenizer import train_tokenizer  # noqa: E402

SOURCES = ("shakespeare", "peoples_daily", "chinese_reviews", "chatterbot", "chitchat",
           "python_stdlib", "sharegpt")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--chars_per_source", type=int, default=3_000_000)
  parser.add_argument("--vocab_size", type=int, default=16000)
  parser.add_argument("--seq_len", type=int, default=2048)
  args = parser.parse_args()
  texts = [d["text"] for s in SOURCES for d in load_documents(s, args.chars_per_source)]
  cores = os.cpu_count() or 1
  results = {"cpu_count": cores, "documents": len(texts),
             "megabytes": sum(len(t.encode()) for t in texts) / 1e6, "runs": []}
  with tempfile.TemporaryDirectory() as work:
    model = os.path.join(work, "tok.model")
    train_tokenizer(texts[::10], args.vocab_size, model, character_coverage=0.9995)
    for workers in sorted({1, cores}):
      for fim_rate in (0.0, 0.5):
        manifest = tokenize_and_pack(texts, model, os.path.join(work, f"p{workers}{fim_rate}"),
                                     PackSettings(args.seq_len, fim_rate=fim_rate),
                                     shards=16, workers=workers)
        run = {k: manifest[k] for k in ("workers", "fim_rate", "tokens", "rows", "seconds",
                                        "tokens_per_second", "packing_efficiency")}
        results["runs"].append(run)
        print(run, flush=True)
  base = next(r["tokens_per_second"] for r in results["runs"] if r["workers"] == 1)
  for run in results["runs"]:
    run["speedup_vs_1_process"] = round(run["tokens_per_second"] / base, 2)
  write_json_atomic(args.json, results, indent=2)


if __name__ == "__main__":
  main()

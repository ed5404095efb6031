"""Curation throughput: documents/s and MB/s per core for the full pipeline on the packaged
real text, with the local process pool and with Ray, in the same run.

  python experiments/bench/data_pipeline.py --json OUT.json [--max_chars_per_source N]

The comparison against datatrove is not part of this script yet.
"""

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from llm.config import load_experiment  # noqa: E402
from llm.data.pipeline import curate  # noqa: E402
from llm.data.sources import load_documents  # noqa: E402


def run_once(executor: str, workers: int, max_chars: int) -> dict:
  """One full curation of the packaged sources; throughput figures."""
  config = load_experiment("data_packaged")
  config.sources = {name: max_chars for name in config.sources}
  config.executor, config.workers = executor, workers
  with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    stats = curate(config, out)
    seconds = time.perf_counter() - started
  docs = sum(stats["read"].values())
  megabytes = input_megabytes(config)
  return {"executor": executor, "workers": workers, "seconds": seconds, "documents": docs,
          "documents_kept": sum(stats["kept_by_source"].values()), "input_mb": megabytes,
          "documents_per_second_per_core": docs / seconds / workers,
          "mb_per_second_per_core": megabytes / seconds / workers}


def input_megabytes(config) -> float:
  """UTF-8 size of everything the run reads."""
  return sum(len(d["text"].encode()) for name, cap in config.sources.items()
             for d in load_documents(name, cap)) / 1e6


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--max_chars_per_source", type=int, default=100_000_000)
  parser.add_argument("--executors", default="local,ray")
  args = parser.parse_args()
  workers = os.cpu_count() or 1
  results = {"cpu_count": workers, "runs": []}
  for executor in args.executors.split(","):
    try:
      results["runs"].append(run_once(executor, workers, args.max_chars_per_source))
    except ImportError as error:
      results["runs"].append({"executor": executor, "skipped": str(error)})
    print(results["runs"][-1], flush=True)
  with open(args.json + ".tmp", "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
  main()

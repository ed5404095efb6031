"""Curation entry point.

  python -m llm.data.curation.run --config=experiments/configs/data_packaged.py --out=DIR

Writes DIR/shard-*.jsonl.gz, DIR/stats.json and DIR/report.md (see llm/data/curation/curate.py).
"""

import logging
import os

from absl import app, flags
from ml_collections import config_flags

from llm.data.curation.curate import curate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Curation config file.")
_OUT = flags.DEFINE_string("out", None, "Output folder for shards, stats.json and report.md.")


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.INFO)
  stats = curate(_CONFIG.value, _OUT.value)
  print(f"kept {sum(stats['kept_by_source'].values())} documents, mixture of "
        f"{stats['mixture']['documents']} in {stats['mixture']['shards']} shards; "
        f"report: {os.path.join(_OUT.value, 'report.md')}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "out"])
  app.run(main)

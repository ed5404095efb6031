"""Entry point: train any Task on the one loop.

  python -m llm.main --config=experiments/configs/tiny.py --config.optim.lr=3e-4 --workdir=DIR

Alignment stages (configs sft_tiny, rm_tiny, dpo_tiny, ppo_tiny) start from an earlier run's
workdir: see llm/align/standalone.py.
"""

import logging
import os

from absl import app, flags
from ml_collections import config_flags

from llm.align.sft import SFTTask, read_pairs, sft_rows
from llm.align.standalone import run_stage
from llm.data.prepare import prepare_lm_data
from llm.parallel.distributed import initialize_from_env
from llm.runtime import configure_logging, validated
from llm.tokenizer import load_tokenizer, train_tokenizer
from llm.train.lm_task import LMTask
from llm.train.loop import train

ALIGN_TASKS = ("chat_sft", "reward", "dpo", "ppo")
_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and data go.")


def build_task(config, workdir: str):
  """The Task named by config.train.task, with its data prepared in the workdir."""
  if config.train.task == "lm":
    _, train_rows, heldout_rows = prepare_lm_data(config.data, workdir)
    return LMTask(config, train_rows, heldout_rows)
  pairs = read_pairs(config.data.sft_path)
  own_tokenizer = os.path.join(workdir, "sft_tokenizer.model")
  if config.data.tokenizer_path or os.path.exists(own_tokenizer):  # a resumed run keeps its own
    tokenizer = load_tokenizer(config.data.tokenizer_path or own_tokenizer)
  else:
    tokenizer = train_tokenizer([p + r for p, r in pairs], config.data.tokenizer_vocab_size,
                                own_tokenizer)
  rows = sft_rows([(tokenizer.encode(p), tokenizer.encode(r)) for p, r in pairs],
                  config.data.seq_len, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)
  return SFTTask(config, rows)


def main(argv):
  del argv
  initialize_from_env()  # a multi-process run (launch/): join the cluster first
  configure_logging()
  config = validated(_CONFIG.value)
  if config.train.task in ALIGN_TASKS:  # starts from an earlier run's parameters
    report = run_stage(config, _WORKDIR.value)
    logging.info("done: %s", {k: v for k, v in report.items() if "heldout" in k})
    return
  result = train(config, build_task(config, _WORKDIR.value), _WORKDIR.value)
  last = result["history"][-1] if result["history"] else {}
  logging.info("done: loss %.4f, eval %s", last.get("loss", float("nan")), result["eval"])


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)

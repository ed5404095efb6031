"""Entry point: train any registered objective on the one loop.

  python -m llm.main --config=experiments/configs/tiny.py --config.optim.lr=3e-4 --workdir=DIR

`config.train.task` names the objective (llm/align/registry.py: lm, sft, chat_sft,
reward_model, dpo, ppo). Alignment objectives start from an earlier run's workdir: see
llm/align/earlier_runs.py. The run's report goes to DIR/report.json.
"""

import logging
import os

from absl import app, flags
from ml_collections import config_flags

from llm.align import registry
from llm.io import write_json_atomic
from llm.parallel.distributed import initialize_from_env
from llm.runtime import configure_logging, rerun_with_hugepages, validated

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to an experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and data go.")


def run(config, workdir: str) -> dict:
  """Trains config.train.task's objective in `workdir`; writes and returns its report."""
  registry.check_run_config(config)
  objective = registry.get(config.train.task)
  inputs = objective.inputs(config, workdir)
  _, report = objective.train(config, inputs, workdir)
  write_json_atomic(os.path.join(workdir, "report.json"), report, indent=2)
  return report


def main(argv):
  del argv
  rerun_with_hugepages()
  initialize_from_env()  # a multi-process run (launch/): join the cluster first
  configure_logging()
  config = validated(_CONFIG.value, registry.check_run_config)
  report = run(config, _WORKDIR.value)
  logging.info("done: %s", report)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)

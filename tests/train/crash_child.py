"""A training run for the crash test: the micro model on random rows, checkpointing every 2
steps asynchronously; resumes from its workdir. Usage: python crash_child.py WORKDIR STEPS"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.loop import train  # noqa: E402
from tests.conftest import micro_config, random_rows  # noqa: E402


def config(steps: int):
  c = micro_config()
  c.train.steps, c.train.batch_size = steps, 4
  c.checkpoint.every_steps, c.checkpoint.every_minutes, c.checkpoint.async_save = 2, 1e6, True
  return c


if __name__ == "__main__":
  steps = int(sys.argv[2])
  train(config(steps), LMTask(config(steps), random_rows()), sys.argv[1])

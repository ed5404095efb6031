"""The contract of a training objective: what `llm.main`, the lifecycle and the registry
(llm/align/registry.py) need to know to run one.

An objective has one name (its `train.task`, its folder under a lifecycle run and its key in
reports), a Task builder, a default experiment config, where its inputs come from when it runs
alone, and optionally its own runner (held-out measurements before and after) and config check.
"""

import dataclasses
from typing import Any, Callable

import jax
import numpy as np

from llm.train.loop import train
from llm.train.partition import merge
from llm.train.task import Task


@dataclasses.dataclass
class StageInputs:
  """What an objective trains from: a tokenizer, data, parameters to start from and the
  parameters of earlier objectives it needs (by objective name, e.g. "reward_model")."""
  tokenizer: Any = None
  conversations: tuple[list, list] | None = None  # (train, held-out) chat conversations
  init_params: dict | None = None
  trained: dict = dataclasses.field(default_factory=dict)
  rows: dict | None = None       # prepared training rows (pretraining, SFT)
  eval_rows: dict | None = None


def no_check(config) -> None:
  del config


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  build_task: Callable[[Any, StageInputs], Task]
  default_config: str                     # experiments/configs/<default_config>.py
  inputs: Callable[[Any, str], StageInputs]  # (config, workdir) when run alone
  run: Callable | None = None             # run(config, inputs, workdir) -> (params, report)
  check: Callable[[Any], None] = no_check  # raises ConfigError on the objective's own fields
  needs: tuple[str, ...] = ()             # earlier objectives whose parameters it reads

  def train(self, config, inputs: StageInputs, workdir: str) -> tuple[dict, dict]:
    """Trains the objective; returns (trained parameters as numpy, report)."""
    if self.run is not None:
      params, report = self.run(config, inputs, workdir)
      return as_numpy(params), report
    result = train(config, self.build_task(config, inputs), workdir)
    return as_numpy(trained_params(result)), training_report(config, result)


def trained_params(result: dict) -> dict:
  """The whole parameter tree (trainable and frozen parts) at the end of a `train` call."""
  return merge(result["state"]["params"], result["frozen"])


def as_numpy(params: dict) -> dict:
  return jax.tree.map(np.asarray, jax.device_get(params))


def training_report(config, result: dict) -> dict:
  """Steps, first and last training loss, and the last evaluation of a `train` call."""
  history = result["history"]
  return {"steps": config.train.steps,
          "first_loss": history[0]["loss"] if history else None,
          "final_loss": history[-1]["loss"] if history else None,
          "eval": result["eval"], "incidents": result["incidents"]}

"""A finished (or running) training run read back from its workdir: its config, the trained
parameters of its newest checkpoint, and its tokenizer. Alignment, export and evaluation all
start from here."""

import json
import logging
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from llm.tokenizer import load_tokenizer

# Runs whose parameters are not a language model's (a scalar head replaces the output).
NOT_LANGUAGE_MODELS = ("reward_model", "guard")


def saved_config(workdir: str) -> dict:
  """The config.json a run wrote into its workdir."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{workdir} holds no training run (no config.json); point at a "
                            "workdir of llm.main or of a lifecycle stage")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def load_trained_params(workdir: str) -> dict:
  """The trained parameters in the newest checkpoint of an earlier run's workdir (numpy)."""
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  trainable = saved_config(workdir)["train"].get("trainable", "")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{workdir} holds no checkpoints/; point align.init_from / "
                            "align.reward_model_from at a finished run's workdir")
  if trainable:
    raise ValueError(f"{workdir} trained only '{trainable}', so its checkpoints lack the frozen "
                     "parameters; merge them first (e.g. llm.model.lora.merge_lora) or start "
                     "from a run that trained every parameter")
  manager = ocp.CheckpointManager(directory, item_names=("state", "data"))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"{directory} has no checkpoint yet")
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  logging.info("parameters from %s, step %d", directory, step)
  return jax.tree.map(np.asarray, restored["state"]["params"])


def policy_params(params: dict) -> dict:
  """The language model's parameters of a pretraining/SFT ({embed, ...}) or a DPO/PPO/reward
  ({"model": ...}) run."""
  return params["model"] if "model" in params else params


def run_tokenizer(workdir: str) -> str:
  """The nearest data/tokenizer.model at or above a run's workdir (the lifecycle layout)."""
  folder = os.path.abspath(workdir)
  for _ in range(3):
    candidate = os.path.join(folder, "data", "tokenizer.model")
    if os.path.exists(candidate):
      return candidate
    folder = os.path.dirname(folder)
  raise FileNotFoundError(f"no data/tokenizer.model at or above {workdir}: pass "
                          "--tokenizer=PATH")


def load_run(workdir: str, tokenizer_path: str = ""):
  """(model config, parameters, tokenizer, train.task) of a language-model training run."""
  saved = saved_config(workdir)
  task = saved["train"].get("task")
  if task in NOT_LANGUAGE_MODELS:
    raise ValueError(f"{workdir} is a scorer ({task} run), not a language model; evaluate "
                     "or export the policy it scores instead (a guard loads with "
                     "llm.safety.guard.load_guard)")
  path = tokenizer_path or saved["data"].get("tokenizer_path") or run_tokenizer(workdir)
  model = ml_collections.ConfigDict(saved["model"])
  return model, policy_params(load_trained_params(workdir)), load_tokenizer(path), task

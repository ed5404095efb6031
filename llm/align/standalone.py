"""One alignment stage run on its own (`llm.main` with train.task chat_sft, reward, dpo or ppo),
starting from the parameters that an earlier run left in its workdir:

  python -m llm.main --config=experiments/configs/dpo_tiny.py --workdir=runs/dpo_beta0.3 \
      --config.align.dpo_beta=0.3 --config.align.init_from=runs/lifecycle/align/sft \
      --config.data.tokenizer_path=runs/lifecycle/data/tokenizer.model

init_from is a pretraining or chat-SFT workdir (its newest checkpoint); reward_from (PPO only)
a reward-model workdir. The stage's report goes to workdir/report.json.
"""

import json
import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from llm.align import stage
from llm.tokenizer import load_tokenizer

RUNNERS = {"chat_sft": stage.chat_sft, "reward": stage.reward_model, "dpo": stage.dpo}


def load_trained_params(workdir: str) -> dict:
  """The trained parameters in the newest checkpoint of an earlier run's workdir (numpy)."""
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  config_path = os.path.join(workdir, "config.json")
  if not os.path.isdir(directory) or not os.path.exists(config_path):
    raise FileNotFoundError(f"{workdir} holds no training run (no checkpoints/ or config.json); "
                            "point align.init_from / align.reward_from at a finished run's "
                            "workdir")
  with open(config_path, encoding="utf-8") as f:
    trainable = json.load(f)["train"].get("trainable", "")
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


def run_stage(config, workdir: str) -> dict:
  a, task = config.align, config.train.task
  if not a.init_from or not config.data.tokenizer_path:
    raise ValueError(f"train.task={task} starts from an earlier run: set "
                     "--config.align.init_from=WORKDIR and --config.data.tokenizer_path=FILE "
                     "(e.g. runs/lifecycle/align/sft and runs/lifecycle/data/tokenizer.model)")
  tokenizer = load_tokenizer(config.data.tokenizer_path)
  init = policy_params(load_trained_params(a.init_from))
  split = stage.split_conversations(a.conversations)
  if task == "ppo":
    if not a.reward_from:
      raise ValueError("train.task=ppo scores rollouts with a reward model: set "
                       "--config.align.reward_from=REWARD_MODEL_WORKDIR")
    _, report = stage.rl(config, tokenizer, split, init, load_trained_params(a.reward_from),
                         workdir)
  else:
    _, report = RUNNERS[task](config, tokenizer, split, init, workdir)
  path = os.path.join(workdir, "report.json")
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  os.replace(path + ".tmp", path)
  return report

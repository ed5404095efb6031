"""Trains PPO and GRPO for 3 steps on 8 CPU devices (data=2, fsdp=2, tensor=2) and on one
device, and prints the losses and where the policy, reference and reward model live, as JSON
(run by test_ppo_mesh.py in its own process: the device count is fixed when JAX starts).

  python tests/align/ppo_mesh_check.py
"""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import json  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from llm.align.ppo import PPOSettings, PPOTask  # noqa: E402
from llm.model import build_model  # noqa: E402
from llm.train.loop import train  # noqa: E402
from llm.train.scalar_head import init_scalar_head  # noqa: E402
from tests.conftest import micro_config  # noqa: E402

LAYOUT = {"data": 2, "fsdp": 2, "tensor": 2}


def spec(leaf) -> list:
  return [list(a) if isinstance(a, tuple) else a for a in leaf.sharding.spec]


def run(algo: str, layout: dict, workdir: str) -> dict:
  config = micro_config(num_kv_heads=4, compute_dtype="float32")
  config.train.steps, config.train.batch_size = 3, 8
  config.checkpoint.every_steps, config.checkpoint.every_minutes = 1000, 1e6
  config.stability.action = "ignore"
  config.parallel.data = 1
  config.parallel.update(layout)
  policy = nnx.to_pure_dict(nnx.state(build_model(config.model, 0), nnx.Param))
  reward = {"model": nnx.to_pure_dict(nnx.state(build_model(config.model, 1), nnx.Param)),
            "head": dict(init_scalar_head(config.model.d_model), b=np.float32(0.5))}
  reward["head"]["w"] = np.linspace(-1, 1, config.model.d_model).astype(np.float32)
  prompts = np.random.default_rng(0).integers(4, 64, size=(16, 6)).astype(np.int32)
  group = 2 if algo == "grpo" else 1
  settings = PPOSettings(algo=algo, rollout_prompts=8 // group, group_size=group,
                         new_tokens=6, epochs=1, minibatches=1)
  task = PPOTask(config, settings, prompts, policy, reward, stop_id=3)
  result = train(config, task, workdir)
  state, frozen = result["state"], result["frozen"]
  return {"losses": [h["loss"] for h in result["history"]],
          "scores": [h["score"] for h in task.history],
          "specs": {"policy.mlp.up": spec(state["params"]["model"]["layers"]["mlp"]["up"]),
                    "adam_mu.mlp.up": spec(state["opt_state"][1][0].mu["model"]["layers"]["mlp"]
                                           ["up"]),
                    "reference.mlp.up": spec(frozen["reference"]["layers"]["mlp"]["up"]),
                    "reward.attn.q_proj": spec(frozen["reward_model"]["model"]["layers"]["attn"]
                                               ["q_proj"])},
          "devices": len(jax.devices())}


def main():
  out = {}
  with tempfile.TemporaryDirectory() as work:
    for algo in ("ppo", "grpo"):
      one = run(algo, {"num_devices": 1}, os.path.join(work, algo + "1"))
      mesh = run(algo, LAYOUT, os.path.join(work, algo + "8"))
      out[algo] = {"mesh": mesh, "one_device": one,
                   "max_loss_diff": float(np.abs(np.subtract(mesh["losses"],
                                                             one["losses"])).max())}
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main()

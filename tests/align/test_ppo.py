"""PPO and GRPO on the one loop: the rollout is the batch source, and the reward rises."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm.align.ppo import PPOSettings, PPOTask, _response_mask
from llm.model import build_model
from llm.train.loop import train
from tests.conftest import micro_config

TARGET = 7  # the toy reward: the share of response tokens that are this id


def reward_fn(tokens, mask):
  response = tokens[:, -mask.shape[1]:]
  return jnp.sum((response == TARGET) * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)


def test_response_mask_stops_after_the_first_stop_token():
  mask = _response_mask(jnp.array([[5, 3, 9, 3], [1, 2, 4, 6]]), stop_id=3)
  np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 1, 1]])


@pytest.mark.parametrize("algo,group", [("ppo", 1), ("grpo", 4)])
def test_reward_rises_with_the_kl_penalty_in_place(tmp_path, algo, group):
  config = micro_config()
  config.train.steps, config.train.batch_size = 40, 8
  config.optim.lr, config.optim.warmup_steps = 1e-2, 2
  config.checkpoint.every_steps, config.stability.action = 1000, "ignore"
  policy = nnx.to_pure_dict(nnx.state(build_model(config.model, 0), nnx.Param))
  prompts = np.random.default_rng(0).integers(4, 64, size=(32, 6)).astype(np.int32)
  settings = PPOSettings(algo=algo, rollout_prompts=16 // group, group_size=group,
                         new_tokens=8, epochs=2, minibatches=2, kl_coef=0.01)
  task = PPOTask(config, settings, prompts, policy, None, stop_id=3, reward_fn=reward_fn)
  result = train(config, task, str(tmp_path))
  scores = [h["score"] for h in task.history]
  assert len(scores) == 40 // 4  # a rollout every epochs x minibatches steps
  assert np.mean(scores[-3:]) > np.mean(scores[:3]) + 0.05, scores  # from ~1/64
  assert all(np.isfinite([h["kl"] for h in task.history]))
  assert "policy/clip_fraction" in result["history"][-1]


def test_evaluation_of_the_reference_policy_has_zero_kl():
  config = micro_config()
  policy = nnx.to_pure_dict(nnx.state(build_model(config.model, 0), nnx.Param))
  prompts = np.random.default_rng(1).integers(4, 64, size=(6, 5)).astype(np.int32)
  task = PPOTask(config, PPOSettings(new_tokens=6), prompts, policy, None, stop_id=3,
                 reward_fn=reward_fn)
  result = task.evaluate(policy, prompts)
  assert result["kl"] == 0.0 and result["prompts"] == 6
  assert 0.0 <= result["score"] <= 1.0 and 1.0 <= result["response_tokens"] <= 6.0

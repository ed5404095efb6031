"""PPO of the SFT tiny model against the tiny reward model: rollouts sampled with the KV cache,
the reward model's score at the end, a per-token KL penalty to the SFT reference (beta 0.1,
adaptive towards kl_target), GAE and a value head. Alignment stage 4 of the lifecycle job.
`--config.align.rl_algo=grpo --config.align.group_size=4 --config.align.rollout_prompts=8`
gives GRPO.

  python -m llm.main --config=experiments/configs/ppo_tiny.py --workdir=DIR \
      --config.align.init_from=CHAT_SFT_WORKDIR \
      --config.align.reward_model_from=REWARD_MODEL_WORKDIR \
      --config.data.tokenizer_path=TOKENIZER
"""

from llm.config import load_experiment


def get_config():
  c = load_experiment("tiny")
  c.name = "ppo_tiny"
  c.train.task = "ppo"
  c.train.steps, c.train.eval_every = 120, 0
  c.optim.lr, c.optim.warmup_steps = 2e-4, 4
  c.optim.weight_decay = 0.0
  c.checkpoint.every_steps = c.train.steps
  c.stability.action = "ignore"  # rewards move with the policy: a loss spike is not a fault
  align = c.align
  align.rl_algo, align.rollout_prompts, align.group_size = "ppo", 32, 1
  align.rl_epochs, align.rl_minibatches = 2, 2
  align.prompt_tokens, align.new_tokens, align.temperature = 24, 24, 1.0
  align.kl_coef, align.kl_target, align.max_kl = 0.1, 2.0, 6.0
  c.train.batch_size = align.rollout_prompts * align.group_size // align.rl_minibatches
  return c

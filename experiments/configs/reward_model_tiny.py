"""A reward model on the SFT tiny model: its backbone plus a scalar head on the last token,
Bradley-Terry on preference pairs built from packaged conversations (llm/align/preferences.py).
Alignment stage 2 of the lifecycle job.

  python -m llm.main --config=experiments/configs/reward_model_tiny.py --workdir=DIR \
      --config.align.init_from=CHAT_SFT_WORKDIR --config.data.tokenizer_path=TOKENIZER
"""

from llm.config import load_experiment


def get_config():
  c = load_experiment("tiny")
  c.name = "reward_model_tiny"
  c.train.task = "reward_model"
  c.train.steps, c.train.eval_every = 150, 0
  c.optim.lr, c.optim.warmup_steps = 1e-3, 10
  c.checkpoint.every_steps = c.train.steps
  return c

"""DPO of the SFT tiny model against itself as the frozen reference (sigmoid loss, beta 0.1;
reference log-probabilities precomputed once). Alignment stage 3 of the lifecycle job.

  python -m llm.main --config=experiments/configs/dpo_tiny.py --workdir=DIR \
      --config.align.init_from=CHAT_SFT_WORKDIR --config.data.tokenizer_path=TOKENIZER
"""

from llm.config import load_experiment


def get_config():
  c = load_experiment("tiny")
  c.name = "dpo_tiny"
  c.train.task = "dpo"
  c.train.steps, c.train.eval_every = 80, 0
  c.optim.lr, c.optim.warmup_steps = 5e-4, 10
  c.checkpoint.every_steps = c.train.steps
  c.align.dpo_beta, c.align.dpo_loss = 0.1, "sigmoid"
  return c

"""Chat SFT of the pretrained tiny model on packaged ShareGPT conversations (assistant-only
loss, curriculum from single-turn to multi-turn). Alignment stage 1 of the lifecycle job.

  python -m llm.main --config=experiments/configs/chat_sft_tiny.py --workdir=DIR \
      --config.align.init_from=runs/lifecycle/pretrain \
      --config.data.tokenizer_path=runs/lifecycle/data/tokenizer.model
"""

from llm.config import load_experiment


def get_config():
  c = load_experiment("tiny")
  c.name = "chat_sft_tiny"
  c.train.task = "chat_sft"
  c.train.steps, c.train.eval_every = 200, 0
  c.optim.lr, c.optim.warmup_steps = 1e-3, 10
  c.checkpoint.every_steps = c.train.steps
  c.align.curriculum_stages = 4
  return c

"""A ~100M-parameter decoder (GPT-2 base shapes with GQA 12/4 and SwiGLU, vocab 32768): the
largest size the CPU training benchmark times."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "base"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 32768, 768, 12
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 12, 4, 64, 2048
  model.max_seq_len = 1024
  model.rope.original_max_seq_len = 1024
  model.scan_layers = False
  c.data.seq_len = 1024
  c.data.tokenizer_vocab_size = 32768
  c.train.steps, c.train.batch_size = 10000, 32
  c.optim.lr, c.optim.warmup_steps = 6e-4, 500
  return c

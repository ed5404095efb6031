"""A tiny decoder that trains in minutes on a laptop CPU; used by the lifecycle run and tests."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "tiny"
  m = c.model
  m.vocab_size, m.d_model, m.num_layers = 2048, 128, 2
  m.num_heads, m.num_kv_heads, m.head_dim, m.mlp_dim = 4, 2, 32, 352
  m.max_seq_len = 128
  m.rope.original_max_seq_len = 128
  c.data.seq_len = 128
  c.data.tokenizer_vocab_size = 2048
  c.train.steps, c.train.batch_size = 1200, 16
  c.optim.lr, c.optim.warmup_steps = 3e-3, 20
  return c

"""A tiny decoder that trains in minutes on a laptop CPU; used by the lifecycle run and tests."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "tiny"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 2048, 128, 2
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 4, 2, 32, 352
  model.max_seq_len = 128
  model.rope.original_max_seq_len = 128
  c.data.seq_len = 128
  c.data.tokenizer_vocab_size = 2048
  c.train.steps, c.train.batch_size = 1200, 16
  c.optim.lr, c.optim.warmup_steps = 3e-3, 20
  return c

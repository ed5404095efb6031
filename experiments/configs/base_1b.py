"""A 1.2B decoder with Llama-3.2-1B shapes (tied embeddings, llama3 RoPE scaling); for pods."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "base_1b"
  m = c.model
  m.vocab_size, m.d_model, m.num_layers = 128256, 2048, 16
  m.num_heads, m.num_kv_heads, m.head_dim, m.mlp_dim = 32, 8, 64, 8192
  m.max_seq_len = 8192
  m.tie_embeddings = True
  m.compute_dtype = "bfloat16"
  m.remat_policy = "save_dots"
  m.rope.theta = 500000.0
  m.rope.scaling, m.rope.factor, m.rope.original_max_seq_len = "llama3", 32.0, 8192
  c.data.seq_len = 8192
  c.data.tokenizer_vocab_size = 128256
  c.train.steps, c.train.batch_size = 100_000, 512
  c.optim.lr, c.optim.warmup_steps = 3e-4, 2000
  return c

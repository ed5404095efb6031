"""Llama-3.1-8B shapes (GQA 32/8, SwiGLU 14336, untied, llama3 RoPE scaling); for pods."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "llama3_8b"
  m = c.model
  m.vocab_size, m.d_model, m.num_layers = 128256, 4096, 32
  m.num_heads, m.num_kv_heads, m.head_dim, m.mlp_dim = 32, 8, 128, 14336
  m.max_seq_len = 8192
  m.tie_embeddings = False
  m.compute_dtype = "bfloat16"
  m.remat_policy = "full"
  m.rope.theta = 500000.0
  m.rope.scaling, m.rope.factor, m.rope.original_max_seq_len = "llama3", 8.0, 8192
  c.data.seq_len = 8192
  c.data.tokenizer_vocab_size = 128256
  c.train.steps, c.train.batch_size = 100_000, 1024
  c.optim.lr, c.optim.warmup_steps = 3e-4, 2000
  return c

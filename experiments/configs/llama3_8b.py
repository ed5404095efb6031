"""Llama-3.1-8B shapes (GQA 32/8, SwiGLU 14336, untied, llama3 RoPE scaling); for pods."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "llama3_8b"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 128256, 4096, 32
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 32, 8, 128, 14336
  model.max_seq_len = 8192
  model.tie_embeddings = False
  model.compute_dtype = "bfloat16"
  model.remat_policy = "full"
  model.rope.theta = 500000.0
  model.rope.scaling, model.rope.factor, model.rope.original_max_seq_len = "llama3", 8.0, 8192
  c.data.seq_len = 8192
  c.data.tokenizer_vocab_size = 128256
  c.train.steps, c.train.batch_size = 100_000, 1024
  c.optim.lr, c.optim.warmup_steps = 3e-4, 2000
  return c

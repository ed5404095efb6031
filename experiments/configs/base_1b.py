"""A 1.2B decoder with Llama-3.2-1B shapes (tied embeddings, llama3 RoPE scaling); for pods."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "base_1b"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 128256, 2048, 16
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 32, 8, 64, 8192
  model.max_seq_len = 8192
  model.tie_embeddings = True
  model.compute_dtype = "bfloat16"
  model.remat_policy = "save_dots"
  model.rope.theta = 500000.0
  model.rope.scaling, model.rope.factor, model.rope.original_max_seq_len = "llama3", 32.0, 8192
  c.data.seq_len = 8192
  c.data.tokenizer_vocab_size = 128256
  c.train.steps, c.train.batch_size = 100_000, 512
  c.optim.lr, c.optim.warmup_steps = 3e-4, 2000
  return c

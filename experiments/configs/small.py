"""A ~25M-parameter decoder (d=512, 8 layers, GQA 8/4, vocab 8192): the CPU benchmark size."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "small"
  m = c.model
  m.vocab_size, m.d_model, m.num_layers = 8192, 512, 8
  m.num_heads, m.num_kv_heads, m.head_dim, m.mlp_dim = 8, 4, 64, 1280
  m.max_seq_len = 512
  m.rope.original_max_seq_len = 512
  m.compute_dtype = "bfloat16"
  # On CPU, XLA copies a scan's stacked residuals; unrolling 8 layers trains ~25% faster.
  m.scan_layers = False
  c.data.seq_len = 512
  c.data.tokenizer_vocab_size = 8192
  c.data.max_chars = 8_000_000
  c.train.steps, c.train.batch_size = 2000, 16
  c.optim.lr, c.optim.warmup_steps = 1e-3, 100
  return c

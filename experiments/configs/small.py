"""A ~25M-parameter decoder (d=512, 8 layers, GQA 8/4, vocab 8192): the CPU benchmark size."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "small"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 8192, 512, 8
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 8, 4, 64, 1280
  model.max_seq_len = 512
  model.rope.original_max_seq_len = 512
  model.compute_dtype = "bfloat16"
  # On CPU, XLA copies a scan's stacked residuals; unrolling 8 layers trains ~25% faster.
  model.scan_layers = False
  c.data.seq_len = 512
  c.data.tokenizer_vocab_size = 8192
  c.data.max_chars = 8_000_000
  c.train.steps, c.train.batch_size = 2000, 16
  c.optim.lr, c.optim.warmup_steps = 1e-3, 100
  return c

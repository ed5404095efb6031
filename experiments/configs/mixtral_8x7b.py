"""Mixtral-8x7B shapes (8 experts, top-2, GQA 32/8, 32k vocabulary), built abstractly in tests."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "mixtral_8x7b"
  m = c.model
  m.vocab_size, m.d_model, m.num_layers = 32000, 4096, 32
  m.num_heads, m.num_kv_heads, m.head_dim, m.mlp_dim = 32, 8, 128, 14336
  m.max_seq_len, m.tie_embeddings = 32768, False
  m.rope.theta, m.rope.original_max_seq_len = 1e6, 32768
  m.norm_eps = 1e-5
  m.moe.num_experts, m.moe.top_k = 8, 2
  m.compute_dtype = "bfloat16"
  c.data.seq_len, c.data.tokenizer_vocab_size = 4096, 32000
  c.parallel.data, c.parallel.fsdp, c.parallel.expert = 1, -1, 8
  return c

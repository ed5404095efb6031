"""Mixtral-8x7B shapes (8 experts, top-2, GQA 32/8, 32k vocabulary), built abstractly in tests."""

from llm.config import default_config


def get_config():
  c = default_config()
  c.name = "mixtral_8x7b"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 32000, 4096, 32
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 32, 8, 128, 14336
  model.max_seq_len, model.tie_embeddings = 32768, False
  model.rope.theta, model.rope.original_max_seq_len = 1e6, 32768
  model.norm_eps = 1e-5
  model.moe.num_experts, model.moe.top_k = 8, 2
  model.compute_dtype = "bfloat16"
  c.data.seq_len, c.data.tokenizer_vocab_size = 4096, 32000
  c.parallel.data, c.parallel.fsdp, c.parallel.expert = 1, -1, 8
  return c

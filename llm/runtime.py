"""Process set-up shared by the command-line entry points."""

import logging

from llm.config import ConfigError, validate


def configure_logging() -> None:
  """INFO for our own messages; orbax (via absl) logs every save step at INFO, so quieten it."""
  logging.getLogger().setLevel(logging.INFO)
  for noisy in ("absl", "jax._src.xla_bridge"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def validated(config, check=validate):
  """The config after `check` (default: the shared fields), or exit with the validation
  message (no traceback)."""
  try:
    check(config)
    return config
  except ConfigError as e:
    raise SystemExit(f"invalid config: {e}") from None

"""Decoder-only transformer in Flax NNX."""

from llm.model.factory import build_model, count_params, param_logical_axes
from llm.model.transformer import Transformer

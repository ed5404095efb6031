"""Logits of our model and of a transformers model, for the parity tests."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model.factory import abstract_model


def our_logits(model_config, params, tokens):
  graphdef = nnx.split(abstract_model(model_config), nnx.Param)[0]
  return np.asarray(nnx.merge(graphdef, params)(jnp.asarray(tokens)))


def hf_logits(model, tokens):
  import torch
  with torch.no_grad():
    return model(torch.as_tensor(tokens)).logits.float().numpy()

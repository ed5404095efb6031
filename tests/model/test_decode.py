"""KV-cache decoding reproduces the full forward pass at every step (acceptance e)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.model import build_model
from tests.conftest import micro_config


@pytest.mark.parametrize("scan_layers", [True, False])
def test_cached_decoding_matches_full_forward(scan_layers):
  model = build_model(micro_config(scan_layers=scan_layers).model)
  tokens = jax.random.randint(jax.random.key(0), (2, 12), 0, 64)
  full = np.asarray(model(tokens))
  cache = model.init_cache(batch=2, max_len=16)
  prefill, cache = model.decode(tokens[:, :5], cache, 0)
  np.testing.assert_allclose(prefill, full[:, :5], atol=1e-5, rtol=0)
  step = jax.jit(lambda tok, cache, i: model.decode(tok, cache, i))
  for i in range(5, 12):
    logits, cache = step(tokens[:, i:i + 1], cache, jnp.int32(i))
    np.testing.assert_allclose(logits[:, 0], full[:, i], atol=1e-5, rtol=0)

"""Recording what each projection of a block reads, for calibration (GPTQ's Hessians).

  with recording() as seen:
    block(x, ...)                 # inside jit: return the grams to get the arrays out
  grams = by_path(block, seen)    # {"attn/q_proj": (x^T x [in, in] float32, tokens), ...}

Only the input Gram matrix is kept (what GPTQ needs), never the activations themselves.
Outside `recording()` projections record nothing and cost nothing extra.
"""

import contextlib
import contextvars
import math

import jax.numpy as jnp

_SEEN = contextvars.ContextVar("projection_inputs", default=None)


@contextlib.contextmanager
def recording():
  seen = {}
  token = _SEEN.set(seen)
  try:
    yield seen
  finally:
    _SEEN.reset(token)


def record(module, name: str, x, n_in: int) -> None:
  """Adds x^T x of the input of `module.<name>` (its last n_in axes are contracted)."""
  seen = _SEEN.get()
  if seen is None:
    return
  name = (id(module), name)
  flat = x.reshape(-1, math.prod(x.shape[x.ndim - n_in:])).astype(jnp.float32)
  gram = jnp.einsum("ti,tj->ij", flat, flat)
  count = jnp.float32(flat.shape[0])
  if name in seen:
    gram, count = gram + seen[name][0], count + seen[name][1]
  seen[name] = (gram, count)


def by_path(root, seen: dict) -> dict:
  """The recorded grams keyed by the weight's path under `root` ("attn/q_proj", ...)."""
  from flax import nnx
  paths = {id(m): "/".join(str(p) for p in path) for path, m in nnx.iter_graph(root)
           if isinstance(m, nnx.Module)}
  return {f"{paths[module]}/{name}".lstrip("/"): value
          for (module, name), value in seen.items() if module in paths}

"""Recording what each projection of a block reads, for calibration (GPTQ's Hessians).

  with recording() as seen:
    block(x, ...)                 # inside jit: return the grams to get the arrays out
  grams = by_path(block, seen)    # {"attn/q_proj": (x^T x [in, in] float32, tokens), ...}

A mixture of experts records one gram per expert, over the tokens routed to it:
{"mlp/gate": ([experts, in, in], [experts]), ...}.

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


def is_recording() -> bool:
  return _SEEN.get() is not None


def add_gram(module, name: str, gram, count) -> None:
  """Adds a gram (and its token count) computed by the caller, e.g. one per expert
  [experts, in, in] with counts [experts]."""
  seen = _SEEN.get()
  if seen is None:
    return
  key = (id(module), name)
  if key in seen:
    gram, count = gram + seen[key][0], count + seen[key][1]
  seen[key] = (gram, count)


def record(module, name: str, x, n_in: int) -> None:
  """Adds x^T x of the input of `module.<name>` (its last n_in axes are contracted)."""
  if not is_recording():
    return
  flat = x.reshape(-1, math.prod(x.shape[x.ndim - n_in:])).astype(jnp.float32)
  add_gram(module, name, jnp.einsum("ti,tj->ij", flat, flat), jnp.float32(flat.shape[0]))


def by_path(root, seen: dict) -> dict:
  """The recorded grams keyed by the weight's path under `root` ("attn/q_proj", ...)."""
  from flax import nnx
  paths = {id(m): "/".join(str(p) for p in path) for path, m in nnx.iter_graph(root)
           if isinstance(m, nnx.Module)}
  return {f"{paths[module]}/{name}".lstrip("/"): value
          for (module, name), value in seen.items() if module in paths}

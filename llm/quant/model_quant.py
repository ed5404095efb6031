"""Quantizing a whole model, block by block ("true sequential").

Each block's inputs come from the blocks before it already quantized, and inside a block the
projections are quantized in the order they run: q/k/v (one shared input), o_proj, gate/up,
down; each group's Hessian is measured with the earlier groups already quantized. Weights
become QuantizedWeight leaves of the parameter tree, which the model reads as usual.
Attention, dense MLP and mixture-of-experts projections are quantized; each expert gets its
own Hessian from the calibration tokens routed to it (an expert no token reached is rounded
to nearest). Routers, side adapters, the embedding and the output head stay in float.
"""

import dataclasses
import functools
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model.capture import by_path, recording
from llm.model.rope import rotary_tables
from llm.quant.gptq import GPTQSettings, gptq
from llm.quant.grid import Grid, dequantize_groups, round_to_nearest
from llm.quant.quantized import as_matrix, from_integers

# (weight path inside a block, number of input axes), in the order the block runs them;
# a block has the paths of its kind (dense MLP, or experts with optional shared and new ones)
SEQUENCE = ((("attn/q_proj", 1), ("attn/k_proj", 1), ("attn/v_proj", 1)),
            (("attn/o_proj", 2),),
            (("mlp/gate", 1), ("mlp/up", 1), ("mlp/new_gate", 1), ("mlp/new_up", 1),
             ("mlp/shared/gate", 1), ("mlp/shared/up", 1)),
            (("mlp/down", 1), ("mlp/new_down", 1), ("mlp/shared/down", 1)))
EXPERT_WEIGHTS = {"mlp/gate", "mlp/up", "mlp/down", "mlp/new_gate", "mlp/new_up",
                  "mlp/new_down"}  # with a leading expert axis when the block has a router


@dataclasses.dataclass(frozen=True)
class QuantSettings:
  method: str = "gptq"  # or "rtn"
  grid: Grid = Grid()
  damp: float = 0.01
  block_size: int = 128
  act_order: bool = False

  def describe(self) -> str:
    g = self.grid
    group = f"g{g.group_size}" if g.group_size else "per-channel"
    order = "+act-order" if self.act_order and self.method == "gptq" else ""
    kind = f":{g.ggml}" if g.ggml else (":sym" if g.symmetric else "")
    return f"{self.method}:{g.bits}:{group}{kind}{order}"


def _get(tree: dict, path: str):
  for key in path.split("/"):
    tree = tree[key]
  return tree


def _set(tree: dict, path: str, value) -> None:
  *parents, last = path.split("/")
  for key in parents:
    tree = tree[key]
  tree[last] = value


def quantize_weight(weight, n_in: int, gram, settings: QuantSettings):
  """One float weight [*in, *out] -> (QuantizedWeight, output errors). gram: summed x^T x of
  its inputs and their count; the errors are mean ||(W - Q) x||^2 over those inputs for
  GPTQ and for RTN on the same grid ({} without a gram)."""
  matrix = as_matrix(np.asarray(weight, np.float64), n_in)
  rtn = round_to_nearest(settings.grid, matrix)
  q, scales, zeros = rtn
  errors = {}
  if gram is not None:
    h = np.asarray(gram[0], np.float64) / max(float(gram[1]), 1.0)  # E[x x^T]
    if settings.method == "gptq":
      q, scales, zeros = gptq(matrix, 2.0 * h, GPTQSettings(
          settings.grid, settings.damp, settings.block_size, settings.act_order))
    width = settings.grid.group_size
    for name, ints in (("rtn", rtn), (settings.method, (q, scales, zeros))):
      delta = matrix - dequantize_groups(*ints, width)
      errors[name] = float(np.sum((delta @ h) * delta))  # trace(D H D^T)
  shape = np.shape(weight)
  return from_integers(q, scales, zeros, settings.grid.bits, settings.grid.group_size,
                       shape[:n_in], shape[n_in:]), errors


def quantize_experts(weights, n_in: int, gram, settings: QuantSettings):
  """Expert weights [experts, *in, *out] -> (one QuantizedWeight with a leading expert axis,
  errors summed over the experts that had calibration tokens). gram: per-expert grams
  [experts, in, in] and token counts [experts], or None."""
  parts, errors = [], {}
  for e in range(len(weights)):
    reached = gram is not None and float(gram[1][e]) > 0
    weight, error = quantize_weight(weights[e], n_in, (gram[0][e], gram[1][e])
                                    if reached else None, settings)
    parts.append(weight)
    for name, value in error.items():
      errors[name] = errors.get(name, 0.0) + value
  if gram is not None and len(errors) and not all(float(c) > 0 for c in gram[1]):
    errors["experts_without_tokens"] = sum(float(c) == 0 for c in gram[1])
  return jax.tree.map(lambda *a: jnp.stack(a), *parts), errors


def _block_states(model) -> list[tuple]:
  """(graphdef, parameter dict) of each block."""
  if model.scan_layers:
    graphdef, stacked = nnx.split(model.layers)
    stacked = nnx.to_pure_dict(stacked)
    return [(graphdef, jax.tree.map(lambda a, i=i: a[i], stacked))
            for i in range(model.num_layers)]
  return [(lambda g, s: (g, nnx.to_pure_dict(s)))(*nnx.split(b)) for b in model.layers]


def _block_runners(graphdef, rotary, positions, segments):
  """(grams(layer, x, paths), advance(layer, x)): the input grams of the named projections,
  and the block's output. The calibration's rotary tables and positions go in as arguments,
  not as constants baked into the program. Each is jitted on its own, so XLA drops the work
  its result does not need: the grams of the first projections cost only the layers above
  them, and the output costs no grams."""
  def run(layer: dict, x, rotary, positions, segments):
    block = nnx.merge(graphdef, layer)
    with recording() as seen:
      out = block(x, rotary, positions, segments)[0]
    return out, by_path(block, seen)

  @functools.partial(jax.jit, static_argnames="paths")
  def grams(layer, x, rotary, positions, segments, paths):
    found = run(layer, x, rotary, positions, segments)[1]
    return {path: found[path] for path in paths}

  @jax.jit
  def advance(layer, x, rotary, positions, segments):
    return run(layer, x, rotary, positions, segments)[0]

  return (lambda layer, paths, x: grams(layer, x, rotary, positions, segments, paths=paths),
          lambda layer, x: advance(layer, x, rotary, positions, segments))


def _has(tree: dict, path: str) -> bool:
  try:
    return not isinstance(_get(tree, path), dict)
  except (KeyError, TypeError):
    return False


def _calibration(model, tokens):
  """(block inputs [windows, length, d] float32, a function giving a block's runners)."""
  tokens = jnp.asarray(tokens)
  positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
  segments = jnp.ones_like(tokens)
  rotary = rotary_tables(positions, model.rope_inv_freq, model.rope_attention_scale)
  runners = {}

  def runners_of(graphdef):
    if graphdef not in runners:
      runners[graphdef] = _block_runners(graphdef, rotary, positions, segments)
    return runners[graphdef]
  return jnp.asarray(model.embed[...])[tokens].astype(jnp.float32), runners_of


def _quantize_block(layer: dict, index: int, grams_of, settings: QuantSettings) -> list:
  """Quantizes `layer` in place, group by group; returns its weights' errors."""
  errors, experts = [], _has(layer, "mlp/router")
  for group in SEQUENCE:
    group = [(path, n_in) for path, n_in in group if _has(layer, path)]
    paths = tuple(path for path, _ in group)
    grams = grams_of(layer, paths) if grams_of and paths else dict.fromkeys(paths)
    for path, n_in in group:
      quantize = quantize_experts if experts and path in EXPERT_WEIGHTS else quantize_weight
      weight, error = quantize(_get(layer, path), n_in, grams[path], settings)
      _set(layer, path, weight)
      errors.append({"layer": index, "weight": path, **error})
  return errors


def quantize_model(model, tokens, settings: QuantSettings, log_every: int = 1):
  """(quantized parameters: a pure dict with QuantizedWeight leaves, per-weight output errors
  of this method and of RTN) of `model` (a merged Transformer), calibrated on tokens
  [windows, length]. RTN needs no calibration (tokens may be None): it runs no forward pass
  and reports no errors."""
  calibrated = settings.method == "gptq"
  x, runners_of = _calibration(model, tokens) if calibrated else (None, None)
  start, quantized, errors = time.perf_counter(), [], []
  blocks = _block_states(model)
  for index, (graphdef, layer) in enumerate(blocks):
    grams_of = None
    if calibrated:
      block_grams, advance = runners_of(graphdef)
      grams_of = functools.partial(block_grams, x=x)
    errors += _quantize_block(layer, index, grams_of, settings)
    if calibrated:
      x = advance(layer, x)
    quantized.append(layer)
    if log_every and (index + 1) % log_every == 0:
      logging.info("quantized block %d/%d (%s) in %.1f s", index + 1, len(blocks),
                   settings.describe(), time.perf_counter() - start)
  return _assemble(model, quantized), errors


def _assemble(model, layers: list[dict]) -> dict:
  params = nnx.to_pure_dict(nnx.split(model, nnx.Param)[1])
  if model.scan_layers:
    params["layers"] = jax.tree.map(lambda *a: jnp.stack(a), *layers)
  else:
    params["layers"] = {i: layer for i, layer in enumerate(layers)}
  return params


def parse_settings(spec: str) -> QuantSettings:
  """"gptq:4:128", "rtn:8:0" (0: per channel), "gptq:3:128:sym:act", "gptq:4:32:q4_0" ->
  QuantSettings."""
  parts = spec.split(":")
  try:
    method, bits = parts[0], int(parts[1])
    group = int(parts[2]) if len(parts) > 2 else 128
  except (IndexError, ValueError):
    raise ValueError(f"quantization {spec!r}: use METHOD:BITS[:GROUP][:sym][:act], e.g. "
                     "gptq:4:128 or rtn:8:0 (group 0: per channel)") from None
  flags = set(parts[3:])
  if method not in ("gptq", "rtn") or flags - {"sym", "act", "q4_0", "q8_0"}:
    raise ValueError(f"quantization {spec!r}: method gptq or rtn, options sym, act, and q4_0 "
                     "or q8_0 (llama.cpp's grids: gptq:4:32:q4_0, gptq:8:32:q8_0)")
  ggml = flags & {"q4_0", "q8_0"}
  grid = Grid.llama_cpp(ggml.pop()) if ggml else Grid(bits, group, "sym" in flags)
  if (grid.bits, grid.group_size) != (bits, group):
    raise ValueError(f"quantization {spec!r}: {grid.ggml} is {grid.bits} bits in groups of 32")
  return QuantSettings(method, grid, act_order="act" in flags)

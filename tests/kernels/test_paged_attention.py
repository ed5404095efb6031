"""Paged attention: the jnp reference against a per-sequence numpy loop, and the Pallas kernel
(interpret mode) against the reference."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels.paged_attention import Tiles, paged_attention
from kernels.paged_attention_reference import paged_attention_reference
from kernels.platform import backend_name

LAYERS, HEAD_DIM = 3, 16
# (seq_len, first query position, real query rows) per sequence: a prefill chunk starting
# mid-sequence, a padding sequence, a decode row, a first chunk, a long chunk, a full block.
MIXED = ((37, 25, 12), (0, 0, 0), (23, 22, 1), (5, 0, 5), (70, 58, 12), (16, 15, 1))
DECODE = ((37, 36, 1), (0, 0, 0), (23, 22, 1), (5, 4, 1), (70, 69, 1), (16, 15, 1))
GROUPS = {1: (2, 2), 3: (6, 2), 4: (4, 1)}  # group size -> (heads, kv_heads)


def _batch(seed, group, sequences, t, block_size=16, dtype=jnp.float32):
  """Random queries and pools; each sequence's blocks are distinct and scattered in the pool,
  table entries past its length are 0; padding rows get positions anywhere in [-5, 100)."""
  rng = np.random.default_rng(seed)
  heads, kv_heads = GROUPS[group]
  max_blocks = math.ceil(80 / block_size)
  num_blocks = len(sequences) * max_blocks + 1
  free = iter(rng.permutation(np.arange(1, num_blocks)))
  tables = np.zeros((len(sequences), max_blocks), np.int32)
  positions = rng.integers(-5, 100, size=(len(sequences), t)).astype(np.int32)
  for s, (length, first, rows) in enumerate(sequences):
    for b in range(math.ceil(length / block_size)):
      tables[s, b] = next(free)
    positions[s, :rows] = np.arange(first, first + rows)
  pool_shape = (LAYERS, num_blocks, block_size, kv_heads, HEAD_DIM)
  return dict(
      q=jnp.asarray(rng.normal(size=(len(sequences), t, heads, HEAD_DIM)), dtype),
      k_pool=jnp.asarray(rng.normal(size=pool_shape), dtype),
      v_pool=jnp.asarray(rng.normal(size=pool_shape), dtype),
      block_tables=jnp.asarray(tables),
      seq_lens=jnp.asarray([length for length, _, _ in sequences], jnp.int32),
      q_positions=jnp.asarray(positions))


def _naive(q, k_pool, v_pool, layer, block_tables, seq_lens, q_positions):
  """Per sequence in float64: rebuild its contiguous K/V, then causal softmax attention."""
  q, k_pool, v_pool = (np.asarray(x, np.float64) for x in (q, k_pool, v_pool))
  num_seqs, t, heads, d = q.shape
  block_size, kv_heads = k_pool.shape[2], k_pool.shape[3]
  out = np.zeros(q.shape)
  for s in range(num_seqs):
    length = int(seq_lens[s])
    blocks = [int(b) for b in block_tables[s, :math.ceil(length / block_size)]]
    k = np.concatenate([k_pool[layer, b] for b in blocks] or [np.zeros((0, kv_heads, d))])
    v = np.concatenate([v_pool[layer, b] for b in blocks] or [np.zeros((0, kv_heads, d))])
    for row in range(t):
      seen = min(length, int(q_positions[s, row]) + 1)
      if seen <= 0:
        continue
      for head in range(heads):
        kv = head // (heads // kv_heads)
        scores = k[:seen, kv] @ q[s, row, head] / math.sqrt(d)
        weights = np.exp(scores - scores.max())
        out[s, row, head] = weights @ v[:seen, kv] / weights.sum()
  return out


def _max_diff(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.mark.parametrize("group", [1, 3, 4])
@pytest.mark.parametrize("sequences,t", [(MIXED, 12), (DECODE, 1)], ids=["mixed", "decode"])
def test_reference_and_kernel_match_a_numpy_loop(group, sequences, t):
  batch = _batch(group, group, sequences, t)
  want = _naive(layer=1, **batch)
  ref = paged_attention_reference(layer=1, **batch)
  assert ref.dtype == jnp.float32 and ref.shape == batch["q"].shape
  assert _max_diff(ref, want) <= 1e-5
  ours = paged_attention(layer=1, interpret=True, **batch)
  assert ours.dtype == jnp.float32 and ours.shape == batch["q"].shape
  assert _max_diff(ours, ref) <= 1e-5
  assert not np.any(np.asarray(ours)[1]), "a padding sequence attends to nothing"


@pytest.mark.parametrize("block_size", [8, 64])
def test_other_block_sizes(block_size):
  batch = _batch(5, 3, MIXED, 12, block_size)
  ref = paged_attention_reference(layer=2, **batch)
  assert _max_diff(ref, _naive(layer=2, **batch)) <= 1e-5
  assert _max_diff(paged_attention(layer=2, interpret=True, **batch), ref) <= 1e-5


def test_bfloat16_inputs_accumulate_in_float32():
  batch = _batch(6, 4, MIXED, 12, dtype=jnp.bfloat16)
  ours = paged_attention(layer=0, interpret=True, **batch)
  ref = paged_attention_reference(layer=0, **batch)
  assert ours.dtype == jnp.float32
  # Only the probabilities' rounding to bfloat16 for the second matmul differs (3.3e-3 here).
  assert _max_diff(ours, ref) <= 1e-2


def test_layer_may_be_traced_under_jit_and_scan():
  batch = _batch(7, 3, MIXED, 12)
  args = [batch[name] for name in ("q", "k_pool", "v_pool")]
  rest = [batch[name] for name in ("block_tables", "seq_lens", "q_positions")]
  refs = [paged_attention_reference(*args, layer, *rest) for layer in range(LAYERS)]

  jitted = jax.jit(lambda layer: paged_attention(*args, layer, *rest, interpret=True))
  assert _max_diff(jitted(jnp.int32(2)), refs[2]) <= 1e-5

  def body(carry, layer):
    return carry, (paged_attention(*args, layer, *rest, interpret=True),
                   paged_attention_reference(*args, layer, *rest))

  _, (ours, scanned_refs) = jax.lax.scan(body, 0, jnp.arange(LAYERS, dtype=jnp.int32))
  assert _max_diff(scanned_refs, np.stack(refs)) <= 1e-6
  assert _max_diff(ours, np.stack(refs)) <= 1e-5


def test_blocks_past_the_length_or_the_causal_limit_are_never_loaded():
  """NaN in every block a program does not need: its outputs stay exact and finite."""
  sequences = DECODE[:4] + ((70, 10, 1), (16, 15, 1))  # 70 keys, but the row sits at 10
  batch = _batch(8, 4, sequences, 1)
  poison = batch["k_pool"].shape[1]  # a new block id at the end of the pool
  tiles = Tiles.for_platform(backend_name(), GROUPS[4][0], 16)
  step_blocks = tiles.blocks_per_step
  tables = np.asarray(batch["block_tables"]).copy()
  for s, (length, position, _) in enumerate(sequences):
    needed = max(0, min(length, position + 1))
    tables[s, math.ceil(needed / (16 * step_blocks)) * step_blocks:] = poison
  shape = list(batch["k_pool"].shape)
  shape[1] = 1
  nan = jnp.full(shape, jnp.nan, jnp.float32)
  batch.update(block_tables=jnp.asarray(tables),
               k_pool=jnp.concatenate([batch["k_pool"], nan], axis=1),
               v_pool=jnp.concatenate([batch["v_pool"], nan], axis=1))
  ours = paged_attention(layer=1, interpret=True, **batch)
  clean = {**batch, "k_pool": jnp.nan_to_num(batch["k_pool"]),
           "v_pool": jnp.nan_to_num(batch["v_pool"])}
  assert bool(jnp.all(jnp.isfinite(ours)))
  assert _max_diff(ours, paged_attention_reference(layer=1, **clean)) <= 1e-5


def _largest_intermediate(jaxpr) -> int:
  sizes = [0]
  for eqn in jaxpr.eqns:
    sizes += [math.prod(v.aval.shape) for v in eqn.outvars]
    for param in eqn.params.values():
      inner = getattr(param, "jaxpr", param)
      if hasattr(inner, "eqns"):
        sizes.append(_largest_intermediate(inner))
  return max(sizes)


def test_reference_builds_no_per_query_copy_of_the_keys():
  batch = _batch(9, 4, MIXED, 12)
  jaxpr = jax.make_jaxpr(lambda b: paged_attention_reference(layer=0, **b))(batch).jaxpr
  s, t, heads, d = batch["q"].shape
  keys = batch["block_tables"].shape[1] * batch["k_pool"].shape[2]
  kv_heads = batch["k_pool"].shape[3]
  # The scores [S, h, t, keys] and the gathered keys [S, keys, kv, d] are the largest arrays.
  assert _largest_intermediate(jaxpr) <= max(s * heads * t * keys, s * keys * kv_heads * d)


def test_rejects_bad_shapes_with_the_reason():
  batch = _batch(0, 3, DECODE, 1)
  with pytest.raises(ValueError, match="multiple of kv_heads"):
    paged_attention(**{**batch, "q": batch["q"][:, :, :5]}, layer=0)
  with pytest.raises(ValueError, match="q_positions"):
    paged_attention(**{**batch, "q_positions": batch["q_positions"][:, :0]}, layer=0)
  with pytest.raises(ValueError, match="block_tables"):
    paged_attention(**{**batch, "block_tables": batch["block_tables"][:2]}, layer=0)

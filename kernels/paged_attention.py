"""Paged attention in Pallas: many sequences, each reading its keys from a pool of blocks.

    out = paged_attention(q, k_pool, v_pool, layer, block_tables, seq_lens, q_positions)

q [S, t, h, d] holds t query rows per sequence (t == 1 for decode, more for a prefill chunk);
k_pool/v_pool [layers, num_blocks, block_size, kv_heads, d] hold the cache of every layer, and
the key at position p of sequence s sits in block block_tables[s, p // block_size]. A row at
position q sees keys k <= q with k < seq_lens[s]; a row that sees none returns zeros.

One program per (sequence, kv head, query tile). The wrapper folds the g query heads of a kv
head into the rows (row = query * g + head), so a tile holds all heads of its queries and each
key block is loaded once per kv head and tile. The program reads `layer` and the block ids
itself and gathers a few blocks per loop step straight from the pool of all layers (nothing is
sliced or copied outside the kernel), and stops at the last step that holds a key the tile's
largest position can see: blocks past the sequence's length or the causal limit are never
loaded. Online softmax in float32; the output is float32.

Written for Triton lowering on GPUs (tiles of at least 16 rows and 16 keys, a power-of-two head
dim) and run with `interpret=True` elsewhere.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from kernels.attention_reference import MASK_VALUE
from kernels.platform import backend_name, compiler_params


@dataclasses.dataclass(frozen=True)
class Tiles:
  """Query rows per program and pool blocks per loop step."""
  rows: int
  blocks_per_step: int
  num_warps: int | None = None  # GPU only
  num_stages: int | None = None  # GPU only

  @classmethod
  def for_platform(cls, platform: str, rows: int, block_size: int) -> "Tiles":
    # Triton's matmuls need 16 rows and 16 keys at least (short decode rows are padded);
    # smaller tiles elsewhere let each tile of a prefill chunk stop at its own causal limit.
    max_rows, keys = (64, 64) if platform == "gpu" else (32, 32)
    tiles = cls(min(max_rows, max(16, pl.next_power_of_2(rows))),
                max(1, keys // block_size))
    if platform == "gpu":
      return dataclasses.replace(tiles, num_warps=4, num_stages=2)
    return tiles


def _nt(a, b):
  """a @ b.T with float32 accumulation."""
  return jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)


def _kernel(layer_ref, len_ref, table_ref, pos_ref, q_ref, k_ref, v_ref, o_ref, *,
            blocks_per_step: int, sm_scale: float):
  """One (sequence, kv head, query tile): q_ref [rows, d], pos_ref [rows], table_ref [blocks],
  k_ref/v_ref [layers, num_blocks, block_size, d] (this kv head of the whole pool)."""
  block_size, d = k_ref.shape[2], k_ref.shape[3]
  step_keys = blocks_per_step * block_size
  layer, seq_len = layer_ref[0], len_ref[0]
  q, pos = q_ref[...], pos_ref[...]
  # Keys [0, needed) are all any row of the tile can see; padding rows may lie anywhere.
  needed = jnp.maximum(jnp.minimum(seq_len, jnp.max(pos) + 1), 0)
  steps = jnp.minimum(jax.lax.div(needed + step_keys - 1, step_keys),
                      table_ref.shape[0] // blocks_per_step)

  def body(j, carry):
    m, l, acc = carry
    ids = table_ref[pl.ds(j * blocks_per_step, blocks_per_step)]
    k = k_ref[layer, ids].reshape(step_keys, d).astype(q.dtype)
    v = v_ref[layer, ids].reshape(step_keys, d).astype(q.dtype)
    key = j * step_keys + jax.lax.broadcasted_iota(jnp.int32, (q.shape[0], step_keys), 1)
    visible = (key <= pos[:, None]) & (key < seq_len)
    s = jnp.where(visible, _nt(q, k) * sm_scale, MASK_VALUE)
    m_new = jnp.maximum(m, s.max(axis=1))
    # The select keeps rows that have seen no key yet at zero weight (not a uniform average).
    p = jnp.where(visible, jnp.exp(s - m_new[:, None]), 0.0)
    alpha = jnp.exp(m - m_new)
    acc = acc * alpha[:, None] + jnp.dot(p.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return m_new, l * alpha + p.sum(axis=1), acc

  rows = q.shape[0]
  init = (jnp.full((rows,), MASK_VALUE, jnp.float32), jnp.zeros((rows,), jnp.float32),
          jnp.zeros((rows, d), jnp.float32))
  _, l, acc = jax.lax.fori_loop(0, steps, body, init)
  o_ref[...] = acc / jnp.where(l > 0, l, 1.0)[:, None]


_SQ = pl.squeezed


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _check(q, k_pool, v_pool, block_tables, seq_lens, q_positions):
  s, t, heads, d = q.shape
  if k_pool.ndim != 5 or k_pool.shape != v_pool.shape or k_pool.shape[4] != d:
    raise ValueError("k_pool and v_pool must be [layers, num_blocks, block_size, kv_heads, "
                     f"{d}], got {k_pool.shape} and {v_pool.shape}")
  if heads % k_pool.shape[3]:
    raise ValueError(f"heads ({heads}) must be a multiple of kv_heads ({k_pool.shape[3]})")
  block_size = k_pool.shape[2]
  if block_size & (block_size - 1):
    raise ValueError(f"block_size must be a power of two, got {block_size}")
  if block_tables.ndim != 2 or block_tables.shape[0] != s:
    raise ValueError(f"block_tables must be [{s}, max_blocks], got {block_tables.shape}")
  if seq_lens.shape != (s,) or q_positions.shape != (s, t):
    raise ValueError(f"seq_lens must be [{s}] and q_positions [{s}, {t}], got "
                     f"{seq_lens.shape} and {q_positions.shape}")


def paged_attention(q, k_pool, v_pool, layer, block_tables, seq_lens, q_positions, *,
                    interpret: bool | None = None):
  """Attention of q [S, t, h, d] over each sequence's paged keys -> float32 [S, t, h, d].

  layer: int32 scalar, may be traced (e.g. the index of a scan over layers). block_tables
  [S, max_blocks] int32, seq_lens [S] int32 (0: a padding sequence), q_positions [S, t] int32.
  interpret: None runs in interpret mode unless the default backend is a GPU.
  """
  _check(q, k_pool, v_pool, block_tables, seq_lens, q_positions)
  s, t, heads, d = q.shape
  layers, num_blocks, block_size, kv_heads, _ = k_pool.shape
  group = heads // kv_heads
  platform = backend_name()
  interpret = platform != "gpu" if interpret is None else interpret
  if not interpret and (d < 16 or d & (d - 1)):
    raise ValueError(f"the compiled kernel needs a power-of-two head_dim >= 16, got {d}")
  tiles = Tiles.for_platform(platform, t * group, block_size)
  rows = _round_up(t * group, tiles.rows)
  table_len = _round_up(block_tables.shape[1], tiles.blocks_per_step)

  dtype = jnp.promote_types(q.dtype, k_pool.dtype)
  # [S, t, kv, g, d] -> [S, kv, t * g, d]: a kv head's query heads side by side in the rows.
  grouped = q.astype(dtype).reshape(s, t, kv_heads, group, d).transpose(0, 2, 1, 3, 4)
  grouped = jnp.pad(grouped.reshape(s, kv_heads, t * group, d),
                    ((0, 0), (0, 0), (0, rows - t * group), (0, 0)))
  positions = jnp.pad(jnp.repeat(q_positions.astype(jnp.int32), group, axis=1),
                      ((0, 0), (0, rows - t * group)), constant_values=-1)
  tables = jnp.pad(block_tables.astype(jnp.int32),
                   ((0, 0), (0, table_len - block_tables.shape[1])))
  layer = jnp.asarray(layer, jnp.int32).reshape(1)
  lens = seq_lens.astype(jnp.int32).reshape(s, 1)

  row_spec = pl.BlockSpec((_SQ, _SQ, tiles.rows, d), lambda b, h, i: (b, h, i, 0))
  pool_spec = pl.BlockSpec((layers, num_blocks, block_size, _SQ, d),
                           lambda b, h, i: (0, 0, 0, h, 0))
  out = pl.pallas_call(
      functools.partial(_kernel, blocks_per_step=tiles.blocks_per_step, sm_scale=d ** -0.5),
      grid=(s, kv_heads, rows // tiles.rows),
      in_specs=[pl.BlockSpec((1,), lambda b, h, i: (0,)),
                pl.BlockSpec((_SQ, 1), lambda b, h, i: (b, 0)),
                pl.BlockSpec((_SQ, table_len), lambda b, h, i: (b, 0)),
                pl.BlockSpec((_SQ, tiles.rows), lambda b, h, i: (b, i)),
                row_spec, pool_spec, pool_spec],
      out_specs=row_spec,
      out_shape=jax.ShapeDtypeStruct((s, kv_heads, rows, d), jnp.float32),
      interpret=interpret,
      compiler_params=None if interpret else compiler_params(platform, tiles, 3),
      name="paged_attention")(layer, lens, tables, positions, grouped, k_pool, v_pool)
  out = out[:, :, :t * group].reshape(s, kv_heads, t, group, d)
  return out.transpose(0, 2, 1, 3, 4).reshape(s, t, heads, d)

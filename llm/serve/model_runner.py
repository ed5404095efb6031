"""Turns a scheduled step into padded arrays, runs the model over the paged cache and samples.

Shapes are bucketed to powers of two: T (tokens in the step), S (sequences), t (query rows
per sequence: 1 for a decode-only step) and B (blocks per sequence). One compilation serves
every step with the same four buckets, so serving N requests of random lengths compiles at most
|T| x |S| x |t| x |B| times, and in practice far fewer (S <= T and t <= T; decode steps are
T = S, t = 1). `compilations` counts them.
"""

import functools

import jax
import numpy as np
from flax import nnx

from llm.model.ops import dtype_of
from llm.model.paged import PagedBatch, init_pools, paged_forward
from llm.serve.block_pool import NULL_BLOCK
from llm.serve.sampler import Sampled, SamplingArrays, sample
from llm.serve.sampling_params import MAX_STOP_IDS
from llm.serve.scheduler import Scheduled


def bucket(n: int) -> int:
  """The power of two at or above n (n >= 1)."""
  return 1 << max(0, (n - 1).bit_length())


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(2, 3))
def _step(graphdef, params, k_pool, v_pool, batch: PagedBatch):
  return paged_forward(nnx.merge(graphdef, params), k_pool, v_pool, batch)


# Sampling compiles apart from the model: its shapes depend on the number of sequences only,
# not on the step's tokens, rows and blocks, so it compiles a handful of times.
_sample = jax.jit(sample)


class ModelRunner:

  def __init__(self, graphdef, params, model_config, *, num_blocks: int, block_size: int,
               kv_dtype: str = "float32", eos_ids=()):
    self.params, self.block_size = params, block_size
    self.vocab_size = model_config.vocab_size
    self.eos_ids = tuple(eos_ids)
    self.k_pool, self.v_pool = init_pools(model_config, num_blocks, block_size,
                                          dtype_of(kv_dtype))
    self.graphdef = graphdef
    self._compiled_before = _step._cache_size()

  @property
  def compilations(self) -> int:
    """Model programs compiled since this runner started (shared by runners of the same
    model; the sampler adds one per sequence bucket)."""
    return _step._cache_size() - self._compiled_before

  def execute(self, scheduled: list[Scheduled]) -> Sampled:
    """Runs one step; row i of the result belongs to scheduled[i] (numpy arrays)."""
    batch = self.batch_arrays(scheduled)
    sampling = self.sampling_arrays(scheduled, batch.block_tables.shape[0])
    logits, self.k_pool, self.v_pool = _step(self.graphdef, self.params, self.k_pool,
                                             self.v_pool, batch)
    return Sampled(*jax.device_get(tuple(_sample(logits, sampling))))

  def batch_arrays(self, scheduled: list[Scheduled]) -> PagedBatch:
    size = self.block_size
    total = sum(s.tokens for s in scheduled)
    T, S = bucket(total), bucket(len(scheduled))
    t = bucket(max(s.tokens for s in scheduled))
    B = bucket(max(len(s.seq.blocks) for s in scheduled))
    tokens, positions = np.zeros(T, np.int32), np.zeros(T, np.int32)
    slots = np.full(T, NULL_BLOCK * size, np.int32)
    token_seq, token_row = np.zeros(T, np.int32), np.zeros(T, np.int32)
    tables, seq_lens = np.full((S, B), NULL_BLOCK, np.int32), np.zeros(S, np.int32)
    query_index, q_positions = np.zeros((S, t), np.int32), np.zeros((S, t), np.int32)
    last_index = np.zeros(S, np.int32)
    at = 0
    for i, item in enumerate(scheduled):
      seq, n = item.seq, item.tokens
      start = seq.computed
      span = slice(at, at + n)
      pos = np.arange(start, start + n, dtype=np.int32)
      tokens[span] = seq.tokens[start:start + n]
      positions[span] = pos
      blocks = np.asarray(seq.blocks, np.int32)
      slots[span] = blocks[pos // size] * size + pos % size
      token_seq[span], token_row[span] = i, np.arange(n)
      tables[i, :len(blocks)] = blocks
      seq_lens[i] = start + n
      rows = np.minimum(np.arange(t), n - 1)  # padding rows repeat the last query
      query_index[i], q_positions[i] = at + rows, start + rows
      last_index[i] = at + n - 1
      at += n
    return PagedBatch(tokens, positions, slots, tables, seq_lens, query_index, q_positions,
                      token_seq, token_row, last_index)

  def sampling_arrays(self, scheduled: list[Scheduled], S: int) -> SamplingArrays:
    temperature, top_p = np.zeros(S, np.float32), np.ones(S, np.float32)
    top_k, index = np.zeros(S, np.int32), np.zeros(S, np.int32)
    seed, logprobs = np.zeros(S, np.uint32), np.zeros(S, bool)
    banned = np.full((S, MAX_STOP_IDS + len(self.eos_ids)), self.vocab_size, np.int32)
    for i, item in enumerate(scheduled):
      seq, p = item.seq, item.seq.params
      temperature[i], top_p[i], top_k[i] = p.temperature, p.top_p, p.top_k
      seed[i], index[i] = seq.seed, len(seq.output)
      logprobs[i] = p.logprobs is not None
      if len(seq.output) < p.min_tokens:
        ids = list(p.stop_token_ids) + ([] if p.ignore_eos else list(self.eos_ids))
        banned[i, :len(ids)] = ids
    return SamplingArrays(temperature, top_p, top_k, seed, index, banned, logprobs)

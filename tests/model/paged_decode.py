"""Logits of the same greedy decode through the paged cache and through the dense cache."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model.factory import build_model
from llm.model.paged import init_pools, paged_forward
from llm.serve.block_pool import BlockPool
from llm.serve.model_runner import ModelRunner
from llm.serve.sampling_params import SamplingParams
from llm.serve.scheduler import Scheduled
from llm.serve.sequence import Sequence


def paged_logits_per_step(model, model_config, prompts, steps, chunk, block_size=4):
  """Prefill the prompts in chunks of `chunk` tokens together, then greedy-decode `steps`
  tokens; returns each sequence's last-token logits after every step, in the paged path."""
  pool = BlockPool(64, block_size, prefix_caching=False)
  graphdef, params = nnx.split(model, nnx.Param)
  runner = ModelRunner(graphdef, params, model_config, num_blocks=64, block_size=block_size)
  runner.k_pool, runner.v_pool = init_pools(model_config, 64, block_size)
  forward = jax.jit(lambda p, k, v, b: paged_forward(nnx.merge(graphdef, p), k, v, b))
  seqs = [Sequence(f"r{i}", 0, list(p), SamplingParams(), 0, i) for i, p in enumerate(prompts)]
  logits_log = [[] for _ in seqs]

  def run(items):
    for item in items:
      item.seq.blocks += [pool.allocate() for _ in range(item.seq.blocks_needed(item.tokens,
                                                                                block_size))]
    logits, runner.k_pool, runner.v_pool = forward(params, runner.k_pool, runner.v_pool,
                                                   runner.batch_arrays(items))
    for row, item in enumerate(items):
      if item.samples:
        logits_log[seqs.index(item.seq)].append(np.asarray(logits[row]))
      item.seq.computed += item.tokens

  while any(s.remaining > 0 for s in seqs):  # chunked prefill, sequences side by side
    run([Scheduled(s, min(chunk, s.remaining)) for s in seqs if s.remaining > 0])
  for _ in range(steps):  # decode together
    for s, log in zip(seqs, logits_log):
      s.output.append(int(np.argmax(log[-1])))
    run([Scheduled(s, 1) for s in seqs])
  return logits_log


def dense_logits_per_step(model, prompt, steps):
  cache = model.init_cache(1, len(prompt) + steps + 1)
  logits, cache = model.decode(jnp.asarray([prompt]), cache, 0)
  out = [np.asarray(logits[0, -1])]
  for i in range(steps):
    token = int(np.argmax(out[-1]))
    logits, cache = model.decode(jnp.asarray([[token]]), cache, len(prompt) + i)
    out.append(np.asarray(logits[0, -1]))
  return out

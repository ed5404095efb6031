"""The engine's outputs against each prompt decoded alone (llm.model.sampling.complete)."""

import numpy as np
import pytest

from llm.model.sampling import complete
from llm.serve.sampling_params import SamplingParams
from tests.serve.conftest import make_engine

SHARED = [5, 9, 2, 33, 17, 8, 8, 40, 3, 12, 7]  # a common prefix of 11 tokens


def _prompts(count, seed=0):
  rng = np.random.default_rng(seed)
  return [SHARED[:rng.integers(0, 12)] + rng.integers(2, 60, rng.integers(1, 14)).tolist()
          for _ in range(count)]


def _run(engine, prompts, params):
  """Final token ids of every request, in order."""
  for i, p in enumerate(prompts):
    engine.add_request(str(i), p, params)
  tokens = {str(i): [] for i in range(len(prompts))}
  while engine.has_unfinished():
    for out in engine.step():
      tokens[out.request_id] += out.token_ids
  return [tokens[str(i)] for i in range(len(prompts))]


def test_greedy_batch_with_preemption_and_prefix_hits_equals_each_prompt_alone(micro_model):
  graphdef, params, _ = micro_model
  prompts = _prompts(12)
  greedy = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)
  engine = make_engine(micro_model, num_blocks=14, max_num_seqs=6, max_num_batched_tokens=16)
  outputs = _run(engine, prompts, greedy)
  metrics = engine.metrics()
  assert metrics["preemptions"] > 0, "the pool was meant to run out"
  assert metrics["prefix_hit_rate"] > 0
  assert metrics["kv_blocks_used"] == 0 and engine.pool.num_free == 13
  for prompt, out in zip(prompts, outputs):
    assert out == complete(graphdef, params, prompt, 10), prompt
  uncached = make_engine(micro_model, prefix_caching=False, max_num_batched_tokens=16)
  assert _run(uncached, prompts, greedy) == outputs
  assert uncached.metrics()["prefix_hit_rate"] == 0

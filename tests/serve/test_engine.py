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
      tokens.setdefault(out.request_id, []).extend(out.token_ids)
  return [tokens[str(i)] for i in range(len(prompts))]


def test_greedy_batch_with_preemption_and_prefix_hits_equals_each_prompt_alone(micro_model):
  graphdef, params, _ = micro_model
  prompts = _prompts(12)
  greedy = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)
  engine = make_engine(micro_model, max_num_seqs=6)
  outputs = _run(engine, prompts, greedy)
  metrics = engine.metrics()
  assert metrics["preemptions"] > 0, "the pool was meant to run out"
  assert metrics["prefix_hit_rate"] > 0
  assert metrics["kv_blocks_used"] == 0 and engine.pool.num_free == 19
  for prompt, out in zip(prompts, outputs):
    assert out == complete(graphdef, params, prompt, 10), prompt
  uncached = make_engine(micro_model, prefix_caching=False)
  assert _run(uncached, prompts, greedy) == outputs
  assert uncached.metrics()["prefix_hit_rate"] == 0


def _texts(engine, prompts, params):
  """(final text, per-step text pieces, finish reason) of each request's first choice."""
  for i, p in enumerate(prompts):
    engine.add_request(str(i), p, params)
  pieces, reasons = {str(i): [] for i in range(len(prompts))}, {}
  while engine.has_unfinished():
    for out in engine.step():
      if out.index == 0:
        pieces[out.request_id].append(out.text)
        if out.finished:
          reasons[out.request_id] = out.finish_reason
  keys = [str(i) for i in range(len(prompts))]
  return [("".join(pieces[k]), pieces[k], reasons[k]) for k in keys]


def test_seeded_sampling_does_not_depend_on_the_batch(micro_model):
  prompt = [5, 9, 2, 33, 17]
  params = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, top_k=20, seed=7,
                          ignore_eos=True)
  alone = _run(make_engine(micro_model), [prompt], params)[0]
  others = SamplingParams(max_tokens=12, temperature=0.7, seed=1, ignore_eos=True)
  engine = make_engine(micro_model)
  for i, p in enumerate(_prompts(3, seed=4)):
    engine.add_request(f"other{i}", p, others)
  assert _run(engine, [prompt], params)[0] == alone
  unseeded = _run(make_engine(micro_model), [prompt], SamplingParams(
      max_tokens=12, temperature=1.0, ignore_eos=True))[0]
  assert unseeded != alone  # (the chance of 12 equal draws is negligible)


def test_stop_strings_stop_tokens_and_min_tokens(micro_model):
  prompt = [5, 9, 2, 33, 17]
  greedy = dict(max_tokens=14, temperature=0.0, ignore_eos=True)
  full, _, reason = _texts(make_engine(micro_model), [prompt], SamplingParams(**greedy))[0]
  assert reason == "length" and len(full) == 14
  stop = full[5:8]  # three characters = three tokens: found across token boundaries
  text, pieces, reason = _texts(make_engine(micro_model), [prompt],
                                SamplingParams(**greedy, stop=("zzzzzzzz", stop)))[0]
  assert text == full[:full.index(stop)] and reason == "stop"
  assert all(stop not in piece for piece in pieces)
  tokens = _run(make_engine(micro_model), [prompt], SamplingParams(**greedy))[0]
  stop_id = tokens[3]
  cut = _run(make_engine(micro_model), [prompt],
             SamplingParams(**greedy, stop_token_ids=(stop_id,)))[0]
  assert cut == tokens[:tokens.index(stop_id) + 1]
  late = _run(make_engine(micro_model), [prompt],
              SamplingParams(**greedy, stop_token_ids=(stop_id,), min_tokens=6))[0]
  assert stop_id not in late[:6] and len(late) >= 6


def test_logprobs_are_the_models_own(micro_model):
  graphdef, params, _ = micro_model
  prompt = [5, 9, 2, 33, 17]
  engine = make_engine(micro_model)
  engine.add_request("a", prompt, SamplingParams(max_tokens=1, temperature=0.0, logprobs=5))
  out = engine.step()[0]
  from flax import nnx
  logits = nnx.merge(graphdef, params)(np.asarray([prompt]))[0, -1]
  reference = np.asarray(logits - np.log(np.sum(np.exp(logits - logits.max()))) - logits.max())
  entry = out.logprobs[0]
  assert entry.token_id == int(np.argmax(reference))
  np.testing.assert_allclose(entry.logprob, reference.max(), atol=1e-5)
  expected = np.argsort(-reference)[:5]
  assert [i for i, _ in entry.top] == expected.tolist()
  np.testing.assert_allclose([v for _, v in entry.top], reference[expected], atol=1e-5)


def test_n_choices_abort_and_context_limit(micro_model):
  engine = make_engine(micro_model)
  engine.add_request("two", [5, 9, 2], SamplingParams(max_tokens=6, temperature=1.0, n=2,
                                                      seed=3, ignore_eos=True))
  engine.add_request("gone", [7, 7, 7], SamplingParams(max_tokens=40, ignore_eos=True))
  choices = {0: [], 1: []}
  for _ in range(3):
    for out in engine.step():
      if out.request_id == "two":
        choices[out.index] += out.token_ids
  engine.abort("gone")
  while engine.has_unfinished():
    for out in engine.step():
      choices[out.index] += out.token_ids
  assert len(choices[0]) == len(choices[1]) == 6 and choices[0] != choices[1]
  assert engine.pool.num_used == 0 and engine.metrics()["aborted"] == 1
  tokens = _run(engine, [[5] * 60], SamplingParams(max_tokens=50, ignore_eos=True))[0]
  assert len(tokens) == 64 - 60  # stopped by the context, not by max_tokens
  with pytest.raises(ValueError, match="64 tokens"):
    engine.add_request("long", [5] * 64, SamplingParams())
  with pytest.raises(ValueError, match="at most 4 stop strings"):
    SamplingParams(stop=("a", "b", "c", "d", "e"))


def test_two_hundred_random_requests_compile_a_bounded_number_of_times(micro_model):
  rng = np.random.default_rng(5)
  engine = make_engine(micro_model, max_num_seqs=6)  # the first test's settings: shared shapes
  for i in range(200):
    prompt = rng.integers(2, 60, rng.integers(1, 25)).tolist()
    engine.add_request(str(i), prompt, SamplingParams(max_tokens=int(rng.integers(1, 11)),
                                                      temperature=0.0, ignore_eos=True))
  finished = 0
  while engine.has_unfinished():
    finished += sum(out.finished for out in engine.step())
  metrics = engine.metrics()
  # buckets: T in {1..16} (5), S in {1..8} (4), t in {1..16} (5), B in {1..16} (5): <= 500
  # (counted from this engine's start: shapes an earlier test compiled are not counted)
  print(f"\n200 requests: {metrics['steps']} steps, {metrics['compilations']} compilations")
  assert finished == 200 and metrics["kv_blocks_used"] == 0
  assert metrics["compilations"] <= 40


def test_a_mixture_of_experts_model_serves_its_own_greedy_tokens():
  from flax import nnx
  from llm.model.factory import build_model
  from tests.conftest import micro_config
  config = micro_config(max_seq_len=64)
  config.model.moe.num_experts = 4  # dropless routing: no token competes for capacity
  graphdef, params = nnx.split(build_model(config.model, seed=1), nnx.Param)
  engine = make_engine((graphdef, params, config.model))
  prompts = _prompts(4, seed=2)
  outputs = _run(engine, prompts, SamplingParams(max_tokens=5, temperature=0.0,
                                                 ignore_eos=True))
  for prompt, out in zip(prompts, outputs):
    assert out == complete(graphdef, params, prompt, 5, bucket=1), prompt


def test_the_pallas_paged_kernel_serves_the_same_tokens(micro_model):
  graphdef, params, model_config = micro_model
  kernel_config = model_config.copy_and_resolve_references()
  kernel_config.attention_impl = "pallas"  # interpret mode on CPU
  from flax import nnx
  from llm.model.factory import abstract_model
  kernel_graphdef = nnx.split(abstract_model(kernel_config), nnx.Param)[0]
  prompts = _prompts(2, seed=9)
  greedy = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
  reference = _run(make_engine(micro_model), prompts, greedy)
  kernel = _run(make_engine((kernel_graphdef, params, kernel_config)), prompts, greedy)
  assert kernel == reference


def test_text_held_back_before_a_stop_string_counts_unfinished_bytes():
  from llm.serve.detokenizer import Detokenizer

  class Bytes:  # token i is the i-th byte string; decoding replaces unfinished characters
    pieces = [b"dd", b"\xda", b"\x99dd"]

    def decode(self, ids):
      return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")

  detok = Detokenizer(Bytes(), stop=("d\u0699",))
  text = "".join(detok.update([0, 1, 2][:n], final=False)[0] for n in (1, 2, 3))
  assert text == "d" and detok.update([0, 1, 2], final=False)[1]

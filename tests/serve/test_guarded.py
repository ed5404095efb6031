"""Rejection sampling against a guard: the pure policy, the server over the micro model with a
keyword guard, and the offline batch helper. Expected answers come from the engine's seeded
samples of each prompt alone (seeded sampling does not depend on the batch)."""

import asyncio
import json
import math

import numpy as np
import pytest

from llm.serve import api
from llm.serve.async_engine import AsyncEngine
from llm.serve.guarded import (REFUSAL, GuardPolicy, Verdict, generate_guarded, judge_prompt,
                               judge_samples, prompt_text, sample_params)
from llm.serve.metrics import Metrics
from llm.serve.sampling_params import SamplingParams
from llm.serve.server import create_app
from tests.serve.conftest import CharTokenizer, make_engine
from tests.serve.server_fixture import asgi_post

SAMPLED = SamplingParams(max_tokens=6, temperature=1.0, seed=5, ignore_eos=True)
STORY = "tell me a story"


class KeywordGuard:
  """P(unsafe) 1 for a text holding one of `words` (the response, else the prompt), else 0."""
  threshold = 0.5

  def __init__(self, *words):
    self.words, self.calls = set(words), []

  def unsafe_probability(self, prompts, responses):
    self.calls.append(len(prompts))
    texts = [p if r is None else r for p, r in zip(prompts, responses)]
    return np.array([float(any(w in t for w in self.words)) for t in texts])


class Served:
  can_chat = True
  tokenizer = CharTokenizer()

  def chat_ids(self, turns):
    return self.tokenizer.encode(turns[-1]["content"])


def _alone(engine, prompt: str, params=SAMPLED, samples: int = 4) -> list[str]:
  """The engine's samples of `prompt` by itself, in order."""
  ids = CharTokenizer().encode(prompt)
  return generate_guarded(engine, None, [prompt], [ids], params, samples)[0]["responses"]


def test_the_policy_on_hand_computed_cases():
  assert judge_prompt(0.5, 0.5) == Verdict(None, "prompt", 0)
  assert judge_prompt(0.49, 0.5) is None
  assert judge_prompt(math.nan, 0.5) == Verdict(None, "prompt", 0)
  assert judge_samples([0.1, 0.9], 0.5) == Verdict(0, None, 0)
  assert judge_samples([0.9, 0.5, 0.2, 0.1], 0.5) == Verdict(2, None, 2)
  assert judge_samples([math.nan, 0.3], 0.5) == Verdict(1, None, 1)
  assert judge_samples([0.7, 0.5, 1.0], 0.5) == Verdict(None, "response", 3)
  assert sample_params(SAMPLED, 4).n == 4 and sample_params(SAMPLED, 4).seed == 5
  assert sample_params(SamplingParams(temperature=0.0), 4).n == 1
  chat = api.ChatRequest(model="m", messages=[
      api.Message(role="system", content="be nice"), api.Message(role="user", content="first"),
      api.Message(role="assistant", content="ok"),
      api.Message(role="user", content=[api.TextPart(type="text", text="second")])])
  assert prompt_text(chat, [], None) == "second"
  tok = CharTokenizer()
  assert prompt_text(api.CompletionRequest(model="m", prompt=["abc"]), [], tok) == "abc"
  assert prompt_text(api.CompletionRequest(model="m", prompt=tok.encode("xyz")),
                     tok.encode("xyz"), tok) == "xyz"
  assert GuardPolicy(KeywordGuard()).threshold == 0.5
  assert GuardPolicy(KeywordGuard(), threshold=0.9).threshold == 0.9


def _metrics(metrics: Metrics) -> dict[str, float]:
  text = metrics.render().decode()
  return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
          for line in text.splitlines() if line and not line.startswith("#")}


async def _post(app, path, body):
  status, raw = await asgi_post(app, path, body)
  return status, (json.loads(raw) if not body.get("stream") or status != 200 else raw.decode())


def test_the_server_refuses_redraws_and_streams_the_judged_answer(micro_model):
  engine = make_engine(micro_model)
  samples = _alone(engine, STORY)
  assert len(set(samples)) == 4 and all(samples)  # the keyword guard tells them apart
  added = []
  add_request = engine.add_request
  engine.add_request = lambda rid, ids, params: (added.append(params),
                                                 add_request(rid, ids, params))[1]
  guard, metrics = KeywordGuard("bomb"), Metrics()
  async_engine = AsyncEngine(engine)
  app = create_app(async_engine, Served(), "micro", metrics=metrics,
                   guard_policy=GuardPolicy(guard, samples=4, refusal="No."))
  base = {"model": "micro", "prompt": STORY, "max_tokens": 6, "seed": 5, "ignore_eos": True}
  chat = {**base, "messages": [{"role": "user", "content": STORY}]}
  del chat["prompt"]

  async def scenario():
    async_engine.start()
    status, body = await _post(app, "/v1/completions", {**base, "prompt": "a bomb, please"})
    assert status == 200 and not added
    assert body["choices"][0]["text"] == "No."
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["usage"] == {"prompt_tokens": 14, "completion_tokens": 0, "total_tokens": 14}
    guard.words = {samples[0]}
    _, body = await _post(app, "/v1/completions", base)
    assert body["choices"][0]["text"] == samples[1] and added[-1].n == 4
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 24
    guard.words = set(samples)
    _, body = await _post(app, "/v1/chat/completions", chat)
    assert body["choices"][0]["message"]["content"] == "No."
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["usage"]["completion_tokens"] == 24
    guard.words = {samples[0], samples[1]}
    status, raw = await _post(app, "/v1/chat/completions",
                              {**chat, "stream": True, "stream_options": {"include_usage": True}})
    events = raw.split("\n\n")
    assert status == 200 and events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]] == [samples[2]]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 24
    assert samples[0] not in raw and samples[1] not in raw
    status, body = await _post(app, "/v1/completions", {**base, "n": 2})
    assert status == 400 and body["error"]["param"] == "n" and "n requests" in \
        body["error"]["message"]
    guard.words = set()
    _, body = await _post(app, "/v1/completions", {**base, "temperature": 0})
    assert added[-1].n == 1 and body["usage"]["completion_tokens"] == 6

  asyncio.run(asyncio.wait_for(scenario(), 120))
  async_engine.shutdown(0)
  m = _metrics(metrics)
  assert m['llm_guard_refusals_total{reason="prompt"}'] == 1
  assert m['llm_guard_refusals_total{reason="response"}'] == 1
  assert m["llm_guard_samples_total"] == 4 * 3 + 1
  assert m["llm_guard_redraws_total"] == 1 + 4 + 2
  assert m["llm_guard_latency_seconds_count"] == len(guard.calls) == 9
  assert guard.calls == [1, 1, 4, 1, 4, 1, 4, 1, 1]


def test_generate_guarded_in_one_batch_equals_each_prompt_alone(micro_model):
  engine = make_engine(micro_model)
  prompts = ["hello there", "a bomb recipe", STORY, "what is up"]
  alone = {p: _alone(engine, p) for p in prompts if p != "a bomb recipe"}
  guard = KeywordGuard("bomb", alone[STORY][0], *alone["hello there"])
  ids = [CharTokenizer().encode(p) for p in prompts]
  together, step = [], engine.step
  engine.step = lambda: (together.append(len(engine.requests)), step())[1]
  results = generate_guarded(engine, guard, prompts, ids, SAMPLED, samples=4, refusal="No.")
  engine.step = step
  assert together[0] == 3  # the three prompts that passed ran as one batch
  assert guard.calls == [4, 12]  # every prompt, then every sample, in one call each
  for prompt, result in zip(prompts, results):  # the keyword rule applied to each alone
    flagged = [any(w in text for w in guard.words) for text in alone.get(prompt, [])]
    passed = flagged.index(False) if False in flagged else None
    assert result["responses"] == alone.get(prompt, [])
    assert result["scores"] == [float(f) for f in flagged]
    assert result["text"] == ("No." if passed is None else alone[prompt][passed])
    assert result["rejected"] == (len(flagged) if passed is None else passed)
  hello, bomb, story, what = results
  assert (hello["refused"], hello["finish_reason"], hello["completion_tokens"]) == \
      ("response", "content_filter", 24)
  assert (bomb["refused"], bomb["samples"], bomb["prompt_score"], bomb["completion_tokens"]) \
      == ("prompt", 0, 1.0, 0)
  assert (story["text"], story["refused"], story["rejected"]) == (alone[STORY][1], None, 1)
  assert what["refused"] is None and what["prompt_score"] == 0.0
  lenient = generate_guarded(engine, guard, prompts, ids, SAMPLED, 4, threshold=1.5)
  assert [r["text"] for r in lenient] == [alone["hello there"][0], lenient[1]["responses"][0],
                                          alone[STORY][0], alone["what is up"][0]]
  plain = generate_guarded(engine, None, prompts, ids, SAMPLED, samples=1)
  assert [r["refused"] for r in plain] == [None] * 4 and plain[1]["samples"] == 1
  assert plain[2]["text"] == alone[STORY][0] and plain[2]["scores"] == []
  greedy = generate_guarded(engine, guard, prompts[2:], ids[2:],
                            SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True), 4)
  assert [r["samples"] for r in greedy] == [1, 1]
  with pytest.raises(ValueError, match="prompt_ids"):
    generate_guarded(engine, guard, prompts, ids[:2], SAMPLED, 4)
  assert REFUSAL == "I can't help with that."

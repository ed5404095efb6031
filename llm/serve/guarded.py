"""Rejection sampling against a safety guard, as a serving policy.

  policy = GuardPolicy(load_guard("run:DIR"), samples=4)  # llm.safety.guard
  app = create_app(async_engine, served, name, guard_policy=policy)

The guard judges the prompt first (the last user message of a chat): one it flags is refused
without running the model. Otherwise one engine request draws k samples, the guard scores them
in one call, and the first that passes (in sample order) is the answer; when none passes, the
refusal. A refusal ends with finish_reason "content_filter"; usage counts every token drawn.
A score at or above the threshold flags a text; a NaN score flags it too.

Greedy requests draw one sample: under temperature 0 all k would be the same text. Requests
for n > 1 are a 400 (send n requests instead), so a response always has one choice. Streaming
buffers: the judged response is sent as one chunk once it is chosen.
`generate_guarded` is the same policy offline, over the plain Engine, for experiments.
"""

import asyncio
import dataclasses
import threading
import time
import uuid
from typing import Protocol

import numpy as np

from llm.serve import api
from llm.serve.engine import Engine, Output
from llm.serve.sampling_params import SamplingParams

REFUSAL = "I can't help with that."
CONTENT_FILTER = "content_filter"


class Guard(Protocol):
  threshold: float  # flags prompts; `response_threshold`, when a guard has one, flags replies

  def unsafe_probability(self, prompts: list[str], responses: list[str | None]) -> np.ndarray:
    """P(unsafe) [n] of each prompt alone (response None) or of the prompt with its response."""


@dataclasses.dataclass(frozen=True)
class Verdict:
  choice: int | None  # the sample to return; None: refuse
  refused: str | None  # "prompt", "response" or None
  rejected: int  # samples flagged before the choice (all of them when none passed)


def is_flagged(score: float, threshold: float) -> bool:
  return not score < threshold  # NaN flags


def judge_prompt(score: float, threshold: float) -> Verdict | None:
  """The refusal of a flagged prompt; None lets it through to sampling."""
  return Verdict(None, "prompt", 0) if is_flagged(score, threshold) else None


def judge_samples(scores, threshold: float) -> Verdict:
  """The first sample that passes, or the refusal when none does."""
  for i, score in enumerate(scores):
    if not is_flagged(score, threshold):
      return Verdict(i, None, i)
  return Verdict(None, "response", len(scores))


def thresholds(guard: Guard, override: float | None = None) -> tuple[float, float]:
  """(prompt, reply) thresholds: the guard's own (its response_threshold if it has one), or
  `override` for both."""
  if override is not None:
    return float(override), float(override)
  return float(guard.threshold), float(getattr(guard, "response_threshold", guard.threshold))


def sample_params(params: SamplingParams, samples: int) -> SamplingParams:
  """The request's settings with n = samples (1 when greedy: the samples would be equal)."""
  return dataclasses.replace(params, n=samples if params.temperature > 0 else 1)


def unsafe_scores(guard: Guard, prompts: list[str], responses: list[str | None]) -> np.ndarray:
  """guard.unsafe_probability as float64 [n], its shape checked."""
  scores = np.asarray(guard.unsafe_probability(list(prompts), list(responses)), np.float64)
  if scores.shape != (len(prompts),):
    raise ValueError(f"the guard returned scores of shape {scores.shape} for {len(prompts)} "
                     "texts")
  return scores


def prompt_text(r, ids: list[int], tokenizer) -> str:
  """What the guard judges of a request: the last user message of a chat, or the prompt."""
  if isinstance(r, api.ChatRequest):
    users = [m for m in r.messages if m.role == "user"] or r.messages
    return users[-1].text()
  prompt = r.prompt[0] if isinstance(r.prompt, list) and r.prompt else r.prompt
  return prompt if isinstance(prompt, str) else tokenizer.decode(ids)


class Replay:
  """A judged response as a stream of engine Outputs; there is nothing left to cancel."""

  def __init__(self, outputs: list[Output]):
    self.outputs = outputs

  async def __aiter__(self):
    for out in self.outputs:
      yield out

  def cancel(self) -> None:
    pass


class GuardPolicy:
  """The server's policy: `guard`, its `threshold` (None: the guard's own), k `samples`."""

  def __init__(self, guard: Guard, threshold: float | None = None, samples: int = 4,
               refusal: str = REFUSAL):
    if samples < 1:
      raise ValueError(f"samples must be >= 1, got {samples}")
    self.guard, self.samples, self.refusal = guard, samples, refusal
    self.threshold, self.response_threshold = thresholds(guard, threshold)
    self._lock = threading.Lock()  # one model: its calls take turns

  def score(self, prompts: list[str], responses: list[str | None], metrics=None) -> np.ndarray:
    with self._lock:
      start = time.perf_counter()
      scores = unsafe_scores(self.guard, prompts, responses)
      seconds = time.perf_counter() - start
    if metrics is not None:
      metrics.guard_seconds(seconds)
    return scores

  async def _score(self, prompts, responses, metrics) -> np.ndarray:
    try:
      return await asyncio.to_thread(self.score, prompts, responses, metrics)
    except Exception as e:  # noqa: BLE001 - the request fails, the server goes on
      raise api.APIError(500, f"the guard failed: {e}", "server_error") from None

  async def respond(self, prompt: str, ids: list[int], params: SamplingParams, metrics,
                    draw) -> Replay | None:
    """The judged response to one request; `draw(params)` runs it on the engine and returns
    its api.Choices (None when the client went away; then this returns None too)."""
    if params.n != 1:
      raise api.APIError(400, f"n must be 1 on a server with a guard, got {params.n}: the "
                         "guard picks one of its own samples per request; send n requests "
                         "instead", param="n")
    score = (await self._score([prompt], [None], metrics))[0]
    if judge_prompt(score, self.threshold) is not None:
      metrics.guard_refused("prompt")
      return Replay([self._output(self.refusal, [], CONTENT_FILTER, len(ids), 0)])
    choices = await draw(sample_params(params, self.samples))
    if choices is None:
      return None
    k = len(choices.text)
    verdict = judge_samples(await self._score([prompt] * k, choices.text, metrics),
                            self.response_threshold)
    metrics.guard_judged(k, verdict.rejected)
    drawn = sum(choices.completion_tokens)
    if verdict.choice is None:
      metrics.guard_refused("response")
      return Replay([self._output(self.refusal, [], CONTENT_FILTER, choices.prompt_tokens,
                                  drawn)])
    i = verdict.choice
    return Replay([self._output(choices.text[i], choices.logprobs[i], choices.reasons[i],
                                choices.prompt_tokens, drawn)])

  @staticmethod
  def _output(text: str, logprobs, reason: str, prompt_tokens: int, tokens: int) -> Output:
    return Output("guarded", 0, [], text, logprobs, True, reason, prompt_tokens, tokens)


def _drive(engine: Engine, requests: dict[str, list[int]], params: SamplingParams) -> dict:
  """Runs `requests` (id -> prompt ids) together to the end; their api.Choices by id."""
  added = []
  try:
    for request_id, ids in requests.items():
      engine.add_request(request_id, ids, params)
      added.append(request_id)
  except BaseException:
    for request_id in added:
      engine.abort(request_id)
    raise
  choices = {request_id: api.Choices(params.n) for request_id in requests}
  while engine.has_unfinished():
    for out in engine.step():
      if out.request_id in choices:
        choices[out.request_id].add(out)
  return choices


def generate_guarded(engine: Engine, guard: Guard | None, prompts: list[str],
                     prompt_ids: list[list[int]], params: SamplingParams, samples: int,
                     threshold: float | None = None, refusal: str = REFUSAL) -> list[dict]:
  """The server's policy over many prompts at once, on the plain Engine (params.n is replaced
  by `samples`; guard None: no judging, the first sample). Per prompt: text, refused
  ("prompt", "response" or None), finish_reason, samples (drawn), rejected, prompt_score,
  scores (of the samples), responses (every sample), completion_tokens."""
  if len(prompts) != len(prompt_ids):
    raise ValueError(f"{len(prompts)} prompts but {len(prompt_ids)} prompt_ids")
  limit, reply_limit = (None, None) if guard is None else thresholds(guard, threshold)
  first = [None] * len(prompts)
  if guard is not None:
    first = [float(s) for s in unsafe_scores(guard, prompts, [None] * len(prompts))]
  verdicts = [None if limit is None else judge_prompt(s, limit) for s in first]
  tag = uuid.uuid4().hex
  choices = _drive(engine, {f"{tag}-{i}": ids for i, ids in enumerate(prompt_ids)
                            if verdicts[i] is None}, sample_params(params, samples))
  drawn = [choices.get(f"{tag}-{i}") for i in range(len(prompts))]
  flat = [(i, text) for i, c in enumerate(drawn) if c is not None for text in c.text]
  scores = [[] for _ in prompts]
  if guard is not None and flat:
    for (i, _), score in zip(flat, unsafe_scores(guard, [prompts[i] for i, _ in flat],
                                                 [text for _, text in flat])):
      scores[i].append(float(score))
  results = []
  for i, c in enumerate(drawn):
    if verdicts[i] is None:
      verdicts[i] = Verdict(0, None, 0) if limit is None else judge_samples(scores[i], reply_limit)
    results.append({**_result(verdicts[i], c, refusal), "prompt_score": first[i],
                    "scores": scores[i]})
  return results


def _result(verdict: Verdict, c: api.Choices | None, refusal: str) -> dict:
  chosen = verdict.choice
  return {"text": refusal if chosen is None else c.text[chosen], "refused": verdict.refused,
          "finish_reason": CONTENT_FILTER if chosen is None else c.reasons[chosen],
          "samples": len(c.text) if c else 0, "rejected": verdict.rejected,
          "responses": list(c.text) if c else [],
          "completion_tokens": sum(c.completion_tokens) if c else 0}

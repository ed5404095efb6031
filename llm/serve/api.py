"""OpenAI's request and response shapes for /v1/completions and /v1/chat/completions.

Requests are parsed strictly (pydantic, JSON types as sent: "5" is not a number). A parameter
this server does not know is a 400 naming it, except these common ones, accepted when they ask
for nothing (their neutral value) and ignored: user, presence_penalty and frequency_penalty
(0), logit_bias ({}), best_of (n), echo (false), suffix (null), and for chat store, metadata,
service_tier, parallel_tool_calls, prompt_cache_key, safety_identifier, response_format
({"type": "text"}), tools ([]), tool_choice ("none"/"auto" without tools). Extensions: top_k,
min_tokens, stop_token_ids, ignore_eos. Errors are {"error": {message, type, param, code}}.
"""

import math
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from llm.serve.engine import Output, TokenLogprob
from llm.serve.sampling_params import MAX_TOP_LOGPROBS, SamplingParams


class APIError(Exception):
  """An error response in OpenAI's shape."""

  def __init__(self, status: int, message: str, type: str = "invalid_request_error",
               param: str | None = None, code: str | None = None):
    super().__init__(message)
    self.status, self.message, self.type, self.param, self.code = (status, message, type, param,
                                                                    code)

  def body(self) -> dict:
    return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
  return {"error": {"message": message, "type": type, "param": param, "code": code}}


class _Strict(BaseModel):
  model_config = ConfigDict(extra="forbid")


class StreamOptions(BaseModel):
  include_usage: bool | None = False


class _Sampling(_Strict):
  model: str
  temperature: float | None = None
  top_p: float | None = None
  top_k: int | None = None  # extension; 0 or -1: every token
  min_tokens: int = 0  # extension
  n: int | None = None
  stop: str | list[str] | None = None
  stop_token_ids: list[int] | None = None  # extension
  seed: int | None = None
  stream: bool | None = False
  stream_options: StreamOptions | None = None
  ignore_eos: bool = False  # extension
  user: str | None = None  # ignored
  presence_penalty: float | None = None
  frequency_penalty: float | None = None
  logit_bias: dict[str, float] | None = None

  @property
  def include_usage(self) -> bool:
    return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Sampling):
  prompt: str | list[int] | list[str] | list[list[int]]
  max_tokens: int | None = 16
  logprobs: int | None = None
  echo: bool | None = None
  suffix: str | None = None
  best_of: int | None = None


class TextPart(_Strict):
  type: Literal["text"]
  text: str


class Message(_Strict):
  role: Literal["system", "developer", "user", "assistant", "tool"]
  content: str | list[TextPart]
  name: str | None = None  # ignored

  def text(self) -> str:
    return self.content if isinstance(self.content, str) else \
        "\n".join(part.text for part in self.content)


class ChatRequest(_Sampling):
  messages: list[Message] = Field(min_length=1)
  max_tokens: int | None = None
  max_completion_tokens: int | None = None
  logprobs: bool | None = None
  top_logprobs: int | None = None
  store: bool | None = None  # the rest are ignored
  metadata: dict[str, str] | None = None
  service_tier: str | None = None
  parallel_tool_calls: bool | None = None
  prompt_cache_key: str | None = None
  safety_identifier: str | None = None
  response_format: dict[str, Any] | None = None
  tools: list[dict[str, Any]] | None = None
  tool_choice: str | None = None


def parse(kind: type[_Sampling], body: bytes) -> _Sampling:
  """The request in `body`, or a 400 naming the first problem."""
  try:
    request = kind.model_validate_json(body or b"null", strict=True)
  except pydantic.ValidationError as e:
    raise _validation_error(e.errors(include_url=False)[0]) from None
  _check_neutral(request)
  return request


def _validation_error(error: dict) -> APIError:
  loc = error.get("loc", ())
  param = None
  if loc:
    param = str(loc[0])
    for part in loc[1:]:
      if isinstance(part, int):
        param += f"[{part}]"
      elif part in ("role", "content", "text", "type", "name", "include_usage"):
        param += f".{part}"
  if error["type"] == "json_invalid":
    return APIError(400, f"could not parse the JSON body: {error['msg']}")
  if not loc:
    return APIError(400, "the request body must be a JSON object")
  if error["type"] == "extra_forbidden":
    return APIError(400, f"Unrecognized request argument supplied: {param}", param=param)
  if error["type"] == "missing":
    return APIError(400, f"Missing required parameter: '{param}'.", param=param)
  return APIError(400, f"{param}: {error['msg']}", param=param)


def _check_neutral(r: _Sampling) -> None:
  """The accepted-but-ignored parameters may only ask for what we do anyway."""
  neutral = {"presence_penalty": r.presence_penalty in (None, 0),
             "frequency_penalty": r.frequency_penalty in (None, 0),
             "logit_bias": not r.logit_bias}
  if isinstance(r, CompletionRequest):
    neutral.update(echo=not r.echo, suffix=r.suffix is None,
                   best_of=r.best_of in (None, r.n or 1))
  else:
    neutral.update(response_format=r.response_format in (None, {"type": "text"}),
                   tools=not r.tools, tool_choice=r.tool_choice in (None, "none", "auto"))
  for name, ok in neutral.items():
    if not ok:
      raise APIError(400, f"{name} is not supported by this server (only its default)",
                     param=name)


def sampling_params(r: _Sampling, max_tokens: int, logprobs: int | None) -> SamplingParams:
  """SamplingParams of a parsed request; a ValueError becomes a 400 naming the parameter."""
  try:
    return SamplingParams(
        max_tokens=max_tokens, temperature=1.0 if r.temperature is None else r.temperature,
        top_p=1.0 if r.top_p is None else r.top_p,
        top_k=0 if r.top_k in (None, -1) else r.top_k, min_tokens=r.min_tokens,
        stop=(r.stop,) if isinstance(r.stop, str) else tuple(r.stop or ()),
        stop_token_ids=tuple(r.stop_token_ids or ()), seed=r.seed,
        n=1 if r.n is None else r.n, logprobs=logprobs, ignore_eos=r.ignore_eos)
  except ValueError as e:
    message = str(e)
    param = next((p for p in ("max_tokens", "temperature", "top_p", "top_k", "min_tokens",
                              "n", "logprobs") if message.startswith(p + " ")), None)
    if "stop token ids" in message:
      param = "stop_token_ids"
    elif "stop strings" in message:
      param = "stop"
    raise APIError(400, message, param=param) from None


def chat_logprobs_setting(r: ChatRequest) -> int | None:
  if r.top_logprobs is not None:
    if not r.logprobs:
      raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    if not 0 <= r.top_logprobs <= MAX_TOP_LOGPROBS:
      raise APIError(400, f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got "
                     f"{r.top_logprobs}", param="top_logprobs")
  return (r.top_logprobs or 0) if r.logprobs else None


def _finite(x: float) -> float:
  return x if math.isfinite(x) else -9999.0  # JSON has no -inf


class Choices:
  """A request's n choices, gathered from the engine's outputs."""

  def __init__(self, n: int):
    self.text, self.reasons = [""] * n, [None] * n
    self.logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
    self.completion_tokens, self.prompt_tokens = [0] * n, 0

  def add(self, out: Output) -> None:
    self.text[out.index] += out.text
    self.logprobs[out.index] += out.logprobs
    self.completion_tokens[out.index] = out.completion_tokens
    self.prompt_tokens = out.prompt_tokens
    if out.finished:
      self.reasons[out.index] = out.finish_reason

  def usage(self) -> dict:
    done = sum(self.completion_tokens)
    return {"prompt_tokens": self.prompt_tokens, "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done}


class Formatter:
  """Response bodies and stream chunks for one served model."""

  def __init__(self, tokenizer, model_name: str):
    self.tokenizer, self.model_name = tokenizer, model_name
    self._pieces: dict[int, str] = {}

  def piece(self, token_id: int) -> str:
    if token_id not in self._pieces:
      self._pieces[token_id] = self.tokenizer.decode([token_id])
    return self._pieces[token_id]

  def completion_logprobs(self, items: list[TokenLogprob], offset: int = 0) -> dict:
    tokens = [self.piece(i.token_id) for i in items]
    offsets = []
    for token in tokens:
      offsets.append(offset)
      offset += len(token)
    return {"tokens": tokens, "token_logprobs": [_finite(i.logprob) for i in items],
            "top_logprobs": [self._top(i.top) for i in items],
            "text_offset": offsets}

  def _top(self, top: list[tuple[int, float]]) -> dict:
    """Keyed by text: of ids with the same text, the most likely keeps its place."""
    out = {}
    for token_id, logprob in top:
      out.setdefault(self.piece(token_id), _finite(logprob))
    return out

  def _chat_entry(self, token_id: int, logprob: float) -> dict:
    token = self.piece(token_id)
    return {"token": token, "logprob": _finite(logprob), "bytes": list(token.encode())}

  def chat_logprobs(self, items: list[TokenLogprob]) -> dict:
    return {"content": [{**self._chat_entry(i.token_id, i.logprob),
                         "top_logprobs": [self._chat_entry(t, v) for t, v in i.top]}
                        for i in items], "refusal": None}

  def _envelope(self, request_id: str, created: int, kind: str, choices: list) -> dict:
    return {"id": request_id, "object": kind, "created": created, "model": self.model_name,
            "system_fingerprint": None, "choices": choices}

  def completion(self, request_id: str, created: int, c: Choices, logprobs: bool) -> dict:
    choices = [{"index": i, "text": c.text[i], "finish_reason": c.reasons[i],
                "logprobs": self.completion_logprobs(c.logprobs[i]) if logprobs else None}
               for i in range(len(c.text))]
    return {**self._envelope(request_id, created, "text_completion", choices),
            "usage": c.usage()}

  def chat(self, request_id: str, created: int, c: Choices, logprobs: bool) -> dict:
    choices = [{"index": i, "finish_reason": c.reasons[i],
                "message": {"role": "assistant", "content": c.text[i], "refusal": None},
                "logprobs": self.chat_logprobs(c.logprobs[i]) if logprobs else None}
               for i in range(len(c.text))]
    return {**self._envelope(request_id, created, "chat.completion", choices),
            "usage": c.usage()}

  def chunk(self, request_id: str, created: int, chat: bool, choices: list,
            usage: bool) -> dict:
    """A stream chunk; `usage`: the request asked for it, so chunks carry "usage": null."""
    kind = "chat.completion.chunk" if chat else "text_completion"
    body = self._envelope(request_id, created, kind, choices)
    return {**body, "usage": None} if usage else body

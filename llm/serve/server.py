"""The OpenAI-compatible HTTP server (FastAPI) over an AsyncEngine.

  GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream: server-sent
  events), GET /health, GET /metrics (Prometheus)

Status codes: 400 a malformed or invalid request (a prompt longer than the context too), 401 a
missing or wrong API key (/v1 only, when one is set), 404 an unknown model or route, 413 a body
over 16 MiB, 429 too many requests waiting, 503 shutting down, 500 the engine failed. Every
error has OpenAI's shape. A client that disconnects cancels its request. With a guard_policy
(guarded.py) each request's answer is the guard's pick of several samples, or a refusal.
"""

import asyncio
import contextlib
import hmac
import json
import time
import uuid

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from llm.serve import api
from llm.serve.api import APIError
from llm.serve.async_engine import AsyncEngine, EngineError, QueueFull, ShuttingDown
from llm.serve.guarded import GuardPolicy, prompt_text
from llm.serve.metrics import Metrics

MAX_BODY_BYTES = 16 << 20


def create_app(engine: AsyncEngine, served, model_name: str, api_key: str = "",
               metrics: Metrics | None = None, shutdown_grace_s: float = 10.0,
               guard_policy: GuardPolicy | None = None) -> FastAPI:
  """The app serving `served` (a ServedModel: tokenizer, can_chat, chat_ids) as `model_name`;
  the engine thread starts with the app and stops with it (shutdown_grace_s for running
  requests to finish)."""

  @contextlib.asynccontextmanager
  async def lifespan(_):
    engine.start()
    yield
    await asyncio.to_thread(engine.shutdown, shutdown_grace_s)

  app = FastAPI(title="llm", lifespan=lifespan, docs_url=None, redoc_url=None,
                openapi_url=None)
  routes = _Routes(engine, served, model_name, api_key, metrics or Metrics(), guard_policy)
  v1 = APIRouter(prefix="/v1", dependencies=[Depends(routes.authorize)])
  v1.add_api_route("/models", routes.models, methods=["GET"])
  v1.add_api_route("/models/{model_id:path}", routes.model, methods=["GET"])
  v1.add_api_route("/completions", routes.completions, methods=["POST"])
  v1.add_api_route("/chat/completions", routes.chat, methods=["POST"])
  app.include_router(v1)
  app.add_api_route("/health", routes.health, methods=["GET"])
  app.add_api_route("/metrics", routes.metrics_page, methods=["GET"])
  _error_handlers(app)
  return app


def _error(e: APIError, headers=None) -> JSONResponse:
  return JSONResponse(e.body(), status_code=e.status, headers=headers)


def _error_handlers(app: FastAPI) -> None:
  @app.exception_handler(APIError)
  async def api_error(_, e: APIError):
    return _error(e)

  @app.exception_handler(RequestValidationError)
  async def invalid(_, e: RequestValidationError):
    first = (e.errors() or [{}])[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return _error(APIError(400, f"{where}: {first.get('msg', 'invalid request')}"))

  @app.exception_handler(HTTPException)
  async def http_error(request: Request, e: HTTPException):
    route = f"{request.method} {request.url.path}"
    message = {404: f"no route {route}", 405: f"method not allowed: {route}"}.get(
        e.status_code, str(e.detail))
    code = "not_found" if e.status_code == 404 else None
    return _error(APIError(e.status_code, message, code=code), e.headers)

  @app.exception_handler(Exception)
  async def crash(_, e: Exception):
    return _error(APIError(500, f"internal error: {type(e).__name__}", "server_error"))


def _sse(obj) -> str:
  return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _until_disconnect(request: Request) -> None:
  while (await request.receive())["type"] != "http.disconnect":
    pass


class _Routes:

  def __init__(self, engine: AsyncEngine, served, model_name: str, api_key: str,
               metrics: Metrics, guard: GuardPolicy | None = None):
    self.engine, self.served, self.model_name, self.guard = engine, served, model_name, guard
    self.api_key, self.metrics = api_key, metrics
    self.tokenizer = served.tokenizer
    self.format = api.Formatter(self.tokenizer, model_name)
    self.started = int(time.time())

  async def authorize(self, request: Request) -> None:
    if not self.api_key:
      return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                             self.api_key.encode()):
      raise APIError(401, "missing or incorrect API key (Authorization: Bearer KEY)",
                     code="invalid_api_key")

  async def health(self):
    if self.engine.failed:
      raise APIError(503, f"the engine stopped: {self.engine.failed}", "server_error",
                     code="engine_stopped")
    if not self.engine.accepting:
      raise APIError(503, "shutting down", "service_unavailable_error", code="shutting_down")
    return {"status": "ok"}

  async def metrics_page(self):
    return Response(self.metrics.render(), media_type=self.metrics.content_type)

  def _card(self) -> dict:
    return {"id": self.model_name, "object": "model", "created": self.started,
            "owned_by": "llm", "max_model_len": self.engine.engine.max_model_len}

  async def models(self):
    return {"object": "list", "data": [self._card()]}

  async def model(self, model_id: str):
    self._check_model(model_id)
    return self._card()

  def _check_model(self, name: str) -> None:
    if name != self.model_name:
      raise APIError(404, f"The model '{name}' does not exist; this server serves "
                     f"'{self.model_name}'", param="model", code="model_not_found")

  async def _body(self, request: Request) -> bytes:
    if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
      raise APIError(413, f"the request body is over {MAX_BODY_BYTES >> 20} MiB")
    body = bytearray()
    async for chunk in request.stream():
      body += chunk
      if len(body) > MAX_BODY_BYTES:
        raise APIError(413, f"the request body is over {MAX_BODY_BYTES >> 20} MiB")
    return bytes(body)

  async def completions(self, request: Request):
    r = api.parse(api.CompletionRequest, await self._body(request))
    self._check_model(r.model)
    ids = await asyncio.to_thread(self._completion_prompt, r.prompt)
    params = api.sampling_params(r, 16 if r.max_tokens is None else r.max_tokens, r.logprobs)
    return await self._respond(request, r, ids, params, chat=False)

  def _completion_prompt(self, prompt) -> list[int]:
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
      if len(prompt) != 1:
        raise APIError(400, f"one prompt per request, got {len(prompt)}; send them as "
                       "separate requests", param="prompt")
      prompt = prompt[0]
    return self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)

  async def chat(self, request: Request):
    r = api.parse(api.ChatRequest, await self._body(request))
    self._check_model(r.model)
    if not self.served.can_chat:
      raise APIError(400, "this model has no chat template: use /v1/completions, or start the "
                     "server with --chat_template", param="messages")
    ids = await asyncio.to_thread(self._chat_prompt, r.messages)
    limit = r.max_completion_tokens if r.max_completion_tokens is not None else r.max_tokens
    if limit is None:  # as much as the context leaves (a too-long prompt fails on submit)
      limit = max(1, self.engine.engine.max_model_len - len(ids))
    params = api.sampling_params(r, limit, api.chat_logprobs_setting(r))
    return await self._respond(request, r, ids, params, chat=True)

  def _chat_prompt(self, messages: list[api.Message]) -> list[int]:
    turns = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
             for m in messages]
    try:
      return self.served.chat_ids(turns)
    except Exception as e:  # noqa: BLE001 - the template refused these messages
      raise APIError(400, f"messages: {e}", param="messages") from None

  async def _respond(self, request: Request, r, ids: list[int], params, chat: bool):
    param = "messages" if chat else "prompt"
    if self.guard is None:
      stream = await self._submit(ids, params, param)
    else:
      stream = await self.guard.respond(prompt_text(r, ids, self.tokenizer), ids, params,
                                        self.metrics, lambda p: self._draw(request, ids, p, param))
      if stream is None:
        return Response(status_code=499)
    request_id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    created = int(time.time())
    if r.stream:
      return StreamingResponse(
          self._events(stream, request_id, created, chat, params, r.include_usage),
          media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    choices = await self._gather(request, stream, params.n)
    if choices is None:
      return Response(status_code=499)  # the client is gone; nobody reads this
    build = self.format.chat if chat else self.format.completion
    return build(request_id, created, choices, params.logprobs is not None)

  async def _submit(self, ids: list[int], params, param: str):
    try:
      stream = self.engine.submit(ids, params)
    except QueueFull as e:
      self.metrics.reject("queue_full")
      raise APIError(429, str(e), "rate_limit_error", code="queue_full") from None
    except ShuttingDown as e:
      self.metrics.reject("shutting_down")
      raise APIError(503, str(e), "service_unavailable_error", code="shutting_down") from None
    try:
      await stream.accepted()
    except ValueError as e:
      self.metrics.reject("invalid")
      raise APIError(400, str(e), param=param) from None
    except EngineError as e:
      raise APIError(500, str(e), "server_error") from None
    except BaseException:
      stream.cancel()
      raise
    return stream

  async def _draw(self, request: Request, ids: list[int], params, param: str):
    return await self._gather(request, await self._submit(ids, params, param), params.n)

  async def _gather(self, request: Request, stream, n: int) -> api.Choices | None:
    """All outputs of a request; None when the client disconnects first (then aborted)."""
    choices = api.Choices(n)

    async def collect():
      async for out in stream:
        choices.add(out)

    work = asyncio.ensure_future(collect())
    gone = asyncio.ensure_future(_until_disconnect(request))
    try:
      await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
      work.cancel()
      gone.cancel()
      stream.cancel()
    if not work.done() or work.cancelled():
      return None
    if isinstance(work.exception(), EngineError):
      raise APIError(500, str(work.exception()), "server_error")
    work.result()
    return choices

  async def _events(self, stream, request_id: str, created: int, chat: bool, params,
                    usage: bool):
    """Server-sent events of one request; a disconnect cancels it (StreamingResponse)."""
    choices = api.Choices(params.n)
    offsets = [0] * params.n
    chunk = lambda items: _sse(self.format.chunk(request_id, created, chat, items, usage))
    try:
      if chat:
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                      "logprobs": None, "finish_reason": None} for i in range(params.n)])
      async for out in stream:
        choices.add(out)
        if not (out.text or out.logprobs or out.finished):
          continue
        yield chunk([self._stream_choice(out, chat, params, offsets)])
      if usage:
        yield _sse({**self.format.chunk(request_id, created, chat, [], False),
                    "usage": choices.usage()})
    except EngineError as e:
      yield _sse(api.error_body(str(e), "server_error"))
    finally:
      stream.cancel()
    yield "data: [DONE]\n\n"

  def _stream_choice(self, out, chat: bool, params, offsets: list[int]) -> dict:
    logprobs = None
    if params.logprobs is not None:
      if chat:
        logprobs = self.format.chat_logprobs(out.logprobs)
      else:
        logprobs = self.format.completion_logprobs(out.logprobs, offsets[out.index])
        offsets[out.index] += sum(len(t) for t in logprobs["tokens"])
    choice = {"index": out.index, "logprobs": logprobs, "finish_reason": out.finish_reason}
    if chat:
      return {**choice, "delta": {"content": out.text} if out.text else {}}
    return {**choice, "text": out.text}

"""The engine in one background thread, for the asyncio HTTP server.

  async_engine = AsyncEngine(engine, max_waiting=256)
  async_engine.start()
  stream = async_engine.submit(prompt_ids, SamplingParams(...))  # QueueFull, ShuttingDown
  await stream.accepted()  # ValueError: the engine refused the request
  try:
    async for out in stream: ...  # engine.Output, per choice per step
  finally:
    stream.cancel()  # a consumer that stops early (client gone) aborts the request
  async_engine.shutdown(grace_s=10)

The Engine is not thread-safe, so one thread owns it. Requests and cancellations reach that
thread through an inbox guarded by a condition variable, which it sleeps on when there is
nothing to do. Outputs go back to each request's asyncio queue via loop.call_soon_threadsafe.
"""

import asyncio
import collections
import dataclasses
import itertools
import logging
import threading
import time

from llm.serve.engine import Engine, Output
from llm.serve.sampling_params import SamplingParams


class QueueFull(Exception):
  """max_waiting requests are already waiting for their first token (HTTP 429)."""


class ShuttingDown(Exception):
  """The server is shutting down and takes no new requests (HTTP 503)."""


class EngineError(RuntimeError):
  """The engine failed while running the request (HTTP 500)."""


_ACCEPTED, _END = object(), object()  # stream markers: add_request succeeded; no more outputs


class Observer:
  """Hooks for metrics, called from the engine thread; these do nothing."""

  def first_token(self, seconds: float) -> None:
    """Time from submit to a request's first token."""

  def inter_token(self, seconds: float) -> None:
    """Time between two tokens of one choice."""

  def choice_finished(self, reason: str) -> None:
    """A choice ended: stop, length, abort or error."""

  def request_done(self, seconds: float) -> None:
    """Time from submit to the request's end."""

  def engine_state(self, stats: dict, running: int, waiting: int) -> None:
    """Engine.metrics() and the request counts, after every loop iteration."""


class RequestStream:
  """One request's outputs, as an async iterator of engine Outputs."""

  def __init__(self, owner: "AsyncEngine", request_id: str, loop):
    self.request_id = request_id
    self._owner, self._loop = owner, loop
    self._queue: asyncio.Queue = asyncio.Queue()
    self._buffer: collections.deque[Output] = collections.deque()
    self._acked = self._ended = False

  def _put(self, item) -> None:
    """From the engine thread."""
    try:
      self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
    except RuntimeError:
      pass  # the event loop is closed: nobody is listening any more

  async def accepted(self) -> None:
    """Waits for the engine to take the request; raises its ValueError if it refused."""
    if not self._acked:
      item = await self._queue.get()
      self._acked = True
      self._check(item)

  def _check(self, item):
    if isinstance(item, BaseException):
      self._ended = True
      raise item
    return item

  def __aiter__(self):
    return self

  async def __anext__(self) -> Output:
    while not self._buffer:
      if self._ended:
        raise StopAsyncIteration
      item = self._check(await self._queue.get())
      if item is _ACCEPTED:
        self._acked = True
      elif item is _END:
        self._ended = True
      else:
        self._buffer.extend(item)
    return self._buffer.popleft()

  def cancel(self) -> None:
    """Aborts the request unless it already ended (idempotent)."""
    if not self._ended:
      self._ended = True
      self._owner._command("abort", self.request_id)


@dataclasses.dataclass
class _Request:
  id: str
  prompt: list[int]
  params: SamplingParams
  stream: RequestStream
  submitted: float
  started: bool = False
  last_token: dict = dataclasses.field(default_factory=dict)  # choice -> time
  tokens: dict = dataclasses.field(default_factory=dict)  # choice -> completion tokens
  done: set = dataclasses.field(default_factory=set)  # finished choices


class AsyncEngine:
  """Runs `engine` in a thread; `max_waiting` bounds the requests waiting for a first token."""

  def __init__(self, engine: Engine, max_waiting: int = 256, observer: Observer | None = None):
    self.engine, self.max_waiting = engine, max_waiting
    self.observer = observer or Observer()
    self._cond = threading.Condition()
    self._inbox: collections.deque = collections.deque()
    self._accepting = True
    self._deadline: float | None = None  # set by shutdown: abort what still runs then
    self.failed: BaseException | None = None  # what killed the engine thread, if anything
    self.waiting = self.running = 0  # requests; changed under _cond
    self._active: dict[str, _Request] = {}  # the engine thread's own
    self._ids = itertools.count()
    self._thread = threading.Thread(target=self._run, name="engine", daemon=True)

  @property
  def accepting(self) -> bool:
    return self._accepting

  def start(self) -> None:
    if not self._thread.is_alive() and self._accepting:
      self._thread.start()

  def submit(self, prompt_ids: list[int], params: SamplingParams) -> RequestStream:
    """Queues a request (call from the event loop); raises QueueFull or ShuttingDown."""
    stream = RequestStream(self, f"req-{next(self._ids)}", asyncio.get_running_loop())
    request = _Request(stream.request_id, list(prompt_ids), params, stream, time.perf_counter())
    with self._cond:
      if not self._accepting:
        raise ShuttingDown("the engine has stopped" if self.failed else
                           "the server is shutting down")
      if self.waiting >= self.max_waiting:
        raise QueueFull(f"{self.waiting} requests are already waiting; retry later")
      self.waiting += 1
      self._inbox.append(("add", request))
      self._cond.notify()
    return stream

  def _command(self, kind: str, payload) -> None:
    with self._cond:
      self._inbox.append((kind, payload))
      self._cond.notify()

  def begin_shutdown(self, grace_s: float) -> None:
    """Stops taking requests; those running get `grace_s` seconds to finish, then abort."""
    with self._cond:
      self._accepting = False
      if self._deadline is None:
        self._deadline = time.monotonic() + grace_s
      self._cond.notify()

  def shutdown(self, grace_s: float = 10.0) -> None:
    """begin_shutdown, then waits for the engine thread to end (blocking)."""
    self.begin_shutdown(grace_s)
    if self._thread.is_alive():
      self._thread.join()

  def _run(self) -> None:
    try:
      self._serve()
    except BaseException as e:  # a bug in the loop itself: fail everything, take no more
      logging.exception("the engine loop died")
      with self._cond:
        self._accepting, self.failed = False, e
        pending = [payload for kind, payload in self._inbox if kind == "add"]
        self._inbox.clear()
      error = EngineError(f"the engine stopped: {e}")
      for request in pending:
        self._count(waiting=-1)
        request.stream._put(error)
      self._end_all(error)

  def _serve(self) -> None:
    while True:
      with self._cond:
        while not self._inbox and not self.engine.has_unfinished():
          if not self._accepting:
            return
          self._cond.wait()
        commands = list(self._inbox)
        self._inbox.clear()
        late = self._deadline is not None and time.monotonic() >= self._deadline
      for kind, payload in commands:
        if kind == "add":
          self._add(payload)
        else:
          self._abort(payload)
      if late:
        self._end_all(None)
      if self.engine.has_unfinished():
        self._step()
      self.observer.engine_state(self.engine.metrics(), self.running, self.waiting)

  def _add(self, request: _Request) -> None:
    try:
      self.engine.add_request(request.id, request.prompt, request.params)
    except Exception as e:  # noqa: BLE001 - the request fails, the loop goes on
      if not isinstance(e, ValueError):
        logging.exception("add_request failed")
        e = EngineError(f"the engine could not take the request: {e}")
      self._count(waiting=-1)
      request.stream._put(e)
      return
    self._active[request.id] = request
    request.stream._put(_ACCEPTED)

  def _abort(self, request_id: str) -> None:
    request = self._active.pop(request_id, None)
    if request is not None:
      self.engine.abort(request_id)
      self._retire(request, "abort")

  def _retire(self, request: _Request, reason: str | None) -> None:
    """Counts the end of a request that left _active; `reason` for its unfinished choices."""
    for index in range(request.params.n):
      if reason and index not in request.done:
        self.observer.choice_finished(reason)
    self._count(**({"running": -1} if request.started else {"waiting": -1}))
    self.observer.request_done(time.perf_counter() - request.submitted)

  def _count(self, running: int = 0, waiting: int = 0) -> None:
    with self._cond:
      self.running += running
      self.waiting += waiting

  def _step(self) -> None:
    try:
      outputs = self.engine.step()
    except Exception as e:  # noqa: BLE001 - fail the requests, keep serving
      logging.exception("engine step failed; failing %d requests", len(self._active))
      self._end_all(EngineError(f"the engine failed: {e}"))
      return
    now = time.perf_counter()
    by_request: dict[str, list[Output]] = {}
    for out in outputs:
      by_request.setdefault(out.request_id, []).append(out)
    for request_id, outs in by_request.items():
      request = self._active.get(request_id)
      if request is None:
        continue
      self._record(request, outs, now)
      request.stream._put(outs)
      if len(request.done) == request.params.n:
        del self._active[request_id]
        request.stream._put(_END)
        self._retire(request, None)

  def _record(self, request: _Request, outs: list[Output], now: float) -> None:
    if not request.started:
      request.started = True
      self._count(running=1, waiting=-1)
      self.observer.first_token(now - request.submitted)
    for out in outs:
      if out.index in request.last_token:
        self.observer.inter_token(now - request.last_token[out.index])
      request.last_token[out.index] = now
      request.tokens[out.index] = out.completion_tokens
      if out.finished:
        request.done.add(out.index)
        self.observer.choice_finished(out.finish_reason)

  def _end_all(self, error: Exception | None) -> None:
    """Aborts every request: with `error`, or (shutdown) as choices finished with 'abort'."""
    for request_id, request in list(self._active.items()):
      try:
        self.engine.abort(request_id)
      except Exception:  # noqa: BLE001 - the engine is already failing
        logging.exception("abort of %s failed", request_id)
      del self._active[request_id]
      if error is not None:
        request.stream._put(error)
      else:
        request.stream._put([
            Output(request_id, i, [], "", [], True, "abort", len(request.prompt),
                   request.tokens.get(i, 0))
            for i in range(request.params.n) if i not in request.done])
        request.stream._put(_END)
      self._retire(request, "error" if error is not None else "abort")

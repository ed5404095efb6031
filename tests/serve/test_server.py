"""The OpenAI-compatible server, in a subprocess, through OpenAI's own client and raw HTTP.

One server serves every test of the file: a tiny random model (tests/serve/server_fixture.py)
with a KV pool of 23 blocks of 16 tokens, so 16 concurrent clients already preempt each other.
The last test shuts it down with SIGTERM mid-stream. The AsyncEngine's failure paths and the
status codes they map to are tested first, on a stand-in engine without a model.
"""

import asyncio
import concurrent.futures
import json
import socket
import threading
import time

import openai
import pytest

from llm.serve.async_engine import AsyncEngine, EngineError, QueueFull, ShuttingDown
from llm.serve.sampling_params import SamplingParams
from llm.serve.server import create_app
from tests.serve.server_fixture import (FakeEngine, FakeServed, Server, asgi_post,
                                        write_tiny_model)

KEY = "test-key"
NAME = "tiny"
PROMPTS = ["The quick fox", "pages its cache", "numbers 0123", "The lazy dog", "punctuation !?",
           "return a + b", "in blocks and", "jumps over the", "as they come", "brown fox",
           "batches requests", "quick brown", "engine pages", "over the dog", "tokens back",
           "cache in blocks"]  # 5 to 8 tokens each: few shapes to compile
GREEDY = {"temperature": 0, "extra_body": {"ignore_eos": True}}


def _run(coro):
  return asyncio.run(asyncio.wait_for(coro, 10))


async def _texts(async_engine, count, max_tokens):
  streams = [async_engine.submit([1, 2, 3], SamplingParams(max_tokens=max_tokens))
             for _ in range(count)]
  return [[out.text async for out in s] for s in streams]


def test_async_engine_streams_bounds_its_queue_and_cancels():
  fake = FakeEngine()
  async_engine = AsyncEngine(fake, max_waiting=4)
  async_engine.start()

  async def scenario():
    assert await _texts(async_engine, 3, 5) == [["x"] * 5] * 3
    with pytest.raises(ValueError, match="too long"):
      await async_engine.submit([1] * 64, SamplingParams()).accepted()
    streams = [async_engine.submit([1], SamplingParams(max_tokens=10**6)) for _ in range(4)]
    with pytest.raises(QueueFull):
      async_engine.submit([1], SamplingParams())
    consumer = asyncio.ensure_future(_texts_of(streams[0]))
    await asyncio.sleep(0.05)
    consumer.cancel()  # a client going away
    for s in streams[1:]:
      s.cancel()
    for _ in range(100):
      if not fake.requests:
        break
      await asyncio.sleep(0.01)
    assert not fake.requests and sorted(fake.aborted) == sorted(s.request_id for s in streams)
    assert async_engine.waiting == async_engine.running == 0

  _run(scenario())
  cpu = time.process_time()
  time.sleep(0.3)
  assert time.process_time() - cpu < 0.1  # the idle engine thread sleeps, it does not poll
  assert async_engine._thread.is_alive()
  async_engine.shutdown(grace_s=1)
  assert not async_engine._thread.is_alive()
  with pytest.raises(ShuttingDown):
    _run(_texts(async_engine, 1, 1))


async def _texts_of(stream):
  try:
    return [out.text async for out in stream]
  finally:
    stream.cancel()


def test_async_engine_fails_requests_on_engine_errors_and_aborts_at_shutdown():
  fake = FakeEngine()
  async_engine = AsyncEngine(fake)
  async_engine.start()

  async def failing():
    stream = async_engine.submit([1], SamplingParams(max_tokens=100))
    await stream.accepted()
    fake.fail = True
    with pytest.raises(EngineError, match="device lost"):
      await _texts_of(stream)
    fake.fail = False
    assert await _texts(async_engine, 1, 2) == [["x", "x"]]  # the thread lives on

  async def shutdown():
    stream = async_engine.submit([1], SamplingParams(max_tokens=10**6))
    await stream.accepted()
    await asyncio.to_thread(async_engine.shutdown, 0.2)
    outs = [out async for out in stream]
    assert outs[-1].finished and outs[-1].finish_reason == "abort"

  _run(failing())
  _run(shutdown())
  assert not async_engine._thread.is_alive() and not fake.requests


def test_async_engine_fails_every_request_if_its_loop_dies():
  fake = FakeEngine()
  async_engine = AsyncEngine(fake)
  async_engine.start()

  async def scenario():
    stream = async_engine.submit([1], SamplingParams(max_tokens=10**6))
    await stream.accepted()
    fake.broken = True
    with pytest.raises(EngineError, match="a bug outside"):
      await _texts_of(stream)
    with pytest.raises(ShuttingDown, match="stopped"):
      async_engine.submit([1], SamplingParams())

  _run(scenario())
  async_engine._thread.join(5)
  assert not async_engine._thread.is_alive() and fake.aborted
  assert async_engine.waiting == async_engine.running == 0


def test_queue_full_shutdown_engine_failure_and_no_chat_template_status_codes():
  fake = FakeEngine()
  async_engine = AsyncEngine(fake, max_waiting=0)
  app = create_app(async_engine, FakeServed(), "fake")
  request = {"model": "fake", "prompt": "abc", "max_tokens": 3}

  async def scenario():
    async_engine.start()
    status, body = await asgi_post(app, "/v1/completions", request)
    assert status == 429 and json.loads(body)["error"]["code"] == "queue_full"
    async_engine.max_waiting = 8
    status, body = await asgi_post(app, "/v1/chat/completions",
                               {"model": "fake", "messages": [{"role": "user", "content": "a"}]})
    assert status == 400 and "chat template" in json.loads(body)["error"]["message"]
    assert json.loads((await asgi_post(app, "/v1/completions", request))[1])["choices"][0][
        "text"] == "xxx"
    fake.fail = True
    status, body = await asgi_post(app, "/v1/completions", request)
    assert status == 500 and "device lost" in json.loads(body)["error"]["message"]
    status, body = await asgi_post(app, "/v1/completions", {**request, "stream": True})
    events = body.decode().split("\n\n")
    assert status == 200 and "device lost" in json.loads(events[0][6:])["error"]["message"]
    assert events[1:] == ["data: [DONE]", ""]
    async_engine.begin_shutdown(0)
    status, body = await asgi_post(app, "/v1/completions", request)
    assert status == 503 and json.loads(body)["error"]["code"] == "shutting_down"

  _run(scenario())
  async_engine.shutdown(0)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  folder = tmp_path_factory.mktemp("serve")
  model = write_tiny_model(str(folder))
  args = [f"--model=hf:{model}", "--chat_template=chatml", f"--served_model_name={NAME}",
          f"--api_key={KEY}", "--max_model_len=128", "--block_size=16", "--num_blocks=24",
          "--max_num_seqs=8", "--max_num_batched_tokens=64", "--max_waiting=256",
          "--shutdown_grace_s=0.3"]
  srv = Server(args, str(folder / "server.log"), api_key=KEY)
  try:
    srv.wait_ready()
    yield srv
  finally:
    code = srv.stop(timeout=15)
    assert code == 0, srv.log()


@pytest.fixture(scope="module")
def client(server):
  return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def _complete(client, prompt, max_tokens=8, **kw):
  return client.completions.create(model=NAME, prompt=prompt, max_tokens=max_tokens,
                                   **{**GREEDY, **kw})


def _chat(client, content, max_tokens=8, **kw):
  return client.chat.completions.create(model=NAME, max_tokens=max_tokens, **{**GREEDY, **kw},
                                        messages=[{"role": "user", "content": content}])


def test_completions_chat_and_models(server, client):
  assert [m.id for m in client.models.list().data] == [NAME]
  done = _complete(client, PROMPTS[0])
  assert done.object == "text_completion" and done.model == NAME and done.id.startswith("cmpl-")
  assert done.choices[0].finish_reason == "length" and done.choices[0].index == 0
  assert done.usage.completion_tokens == 8 and done.usage.prompt_tokens > 0
  assert done.usage.total_tokens == done.usage.prompt_tokens + 8
  ids = client.completions.create(model=NAME, prompt=[5, 6, 7, 8, 9], max_tokens=3, **GREEDY)
  assert ids.usage.prompt_tokens == 5 and ids.usage.completion_tokens == 3
  reply = _chat(client, PROMPTS[3])
  assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
  assert reply.usage.completion_tokens == 8 and reply.choices[0].finish_reason == "length"
  parts = client.chat.completions.create(
      model=NAME, max_tokens=8, **GREEDY,
      messages=[{"role": "user", "content": [{"type": "text", "text": PROMPTS[3]}]}])
  assert parts.choices[0].message.content == reply.choices[0].message.content
  assert server.get("/health") == (200, b'{"status":"ok"}')


def test_streams_equal_the_whole_response(server, client):
  whole = _complete(client, PROMPTS[2], max_tokens=12)
  chunks = list(_complete(client, PROMPTS[2], max_tokens=12, stream=True,
                          stream_options={"include_usage": True}))
  assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
  assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
  assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
  reply = _chat(client, PROMPTS[2])
  chunks = list(_chat(client, PROMPTS[2], stream=True))
  assert chunks[0].choices[0].delta.role == "assistant"
  assert all(c.object == "chat.completion.chunk" and c.usage is None for c in chunks)
  assert "".join(c.choices[0].delta.content or "" for c in chunks) == \
      reply.choices[0].message.content
  status, raw = server.request("POST", "/v1/chat/completions", json.dumps(
      {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
       "stream": True}).encode())
  events = raw.decode().split("\n\n")
  assert status == 200 and events[-2:] == ["data: [DONE]", ""]
  assert all(e.startswith("data: ") for e in events[:-1])


def test_n_seed_and_stop_strings(client):
  sampled = dict(model=NAME, prompt=PROMPTS[3], max_tokens=10, temperature=1.0, n=2, seed=11,
                 extra_body={"ignore_eos": True})
  first = client.completions.create(**sampled)
  again = client.completions.create(**sampled)
  assert [c.index for c in first.choices] == [0, 1]
  assert [c.text for c in first.choices] == [c.text for c in again.choices]
  assert first.choices[0].text != first.choices[1].text
  assert first.usage.completion_tokens == 20  # both choices
  other = client.completions.create(**{**sampled, "seed": 12})
  assert [c.text for c in other.choices] != [c.text for c in first.choices]
  text = _complete(client, PROMPTS[4], max_tokens=16).choices[0].text
  at = next(k for k in range(1, len(text) - 1)  # printable ASCII: no partial characters
            if text[k:k + 2].isascii() and text[k:k + 2].isprintable()
            and text.index(text[k:k + 2]) == k)
  stopped = _complete(client, PROMPTS[4], max_tokens=16, stop=["\x00\x01", text[at:at + 2]])
  assert stopped.choices[0].text == text[:at]
  assert stopped.choices[0].finish_reason == "stop"


def test_logprobs(client):
  done = _complete(client, PROMPTS[5], max_tokens=6, logprobs=3)
  lp = done.choices[0].logprobs
  assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 6
  assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
  for chosen, top in zip(lp.token_logprobs, lp.top_logprobs):
    values = list(top.values())
    assert 1 <= len(values) <= 3 and values == sorted(values, reverse=True)
    assert chosen == pytest.approx(values[0])  # greedy: the most likely
  reply = _chat(client, PROMPTS[5], max_tokens=6, logprobs=True, top_logprobs=4)
  content = reply.choices[0].logprobs.content
  assert len(content) == 6
  for entry in content:
    values = [t.logprob for t in entry.top_logprobs]
    assert len(values) == 4 and values == sorted(values, reverse=True)
    assert entry.logprob == pytest.approx(values[0]) and entry.token == entry.top_logprobs[0].token
    assert bytes(entry.bytes).decode() == entry.token
  plain = _chat(client, PROMPTS[5], max_tokens=6)
  assert plain.choices[0].logprobs is None
  text, at = plain.choices[0].message.content, 0
  for entry in content:  # the tokens in the text, in order (but partial characters)
    if "\ufffd" not in entry.token:
      at = text.index(entry.token, at) + len(entry.token)


@pytest.mark.parametrize("settings, param", [
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": -3}, "max_tokens"),
    ({"temperature": -0.5}, "temperature"), ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"logprobs": 21}, "logprobs"), ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ({"prompt": "fox " * 200}, "prompt"), ({"prompt": ["one", "two"]}, "prompt")])
def test_invalid_requests_are_400(client, settings, param):
  with pytest.raises(openai.BadRequestError) as e:
    client.completions.create(**{"model": NAME, "prompt": "hi", **settings})
  error = e.value.body
  assert e.value.status_code == 400 and error["param"] == param, error
  assert error["type"] == "invalid_request_error" and error["message"]
  if str(settings.get("prompt")).startswith("fox"):
    assert "128" in error["message"] and "tokens" in error["message"]


def test_not_found_auth_and_malformed_json(server, client):
  with pytest.raises(openai.NotFoundError) as e:
    client.completions.create(model="gpt-9", prompt="hi", max_tokens=1)
  assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
  with pytest.raises(openai.BadRequestError, match="top_logprobs"):
    _chat(client, "hi", top_logprobs=25, logprobs=True)
  intruder = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
  with pytest.raises(openai.AuthenticationError):
    intruder.models.list()
  status, raw = server.request("GET", "/v1/models", auth=False)
  assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
  assert server.get("/metrics")[0] == 200  # /metrics and /health need no key
  for body in (b'{"model": "tiny", "prompt": ', b"[1, 2]", b""):
    status, raw = server.request("POST", "/v1/completions", body)
    error = json.loads(raw)["error"]
    assert status == 400 and set(error) == {"message", "type", "param", "code"}, error
  for method, path, code in (("GET", "/v2/nothing", 404), ("GET", "/v1/completions", 405)):
    status, raw = server.request(method, path)
    assert status == code and "message" in json.loads(raw)["error"]


def test_concurrent_clients_get_what_they_get_alone(client):
  alone = [_complete(client, p, max_tokens=8).choices[0].text for p in PROMPTS]
  with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
    together = list(pool.map(lambda p: _complete(client, p, max_tokens=8).choices[0].text,
                             PROMPTS))
  assert together == alone


def test_a_megabyte_prompt_is_refused_quickly(server, client):
  started = time.monotonic()
  with pytest.raises(openai.BadRequestError, match="context"):
    client.completions.create(model=NAME, prompt="fox " * 250_000, max_tokens=1)
  assert time.monotonic() - started < 10
  assert _complete(client, PROMPTS[6], max_tokens=2).usage.completion_tokens == 2


def _send(server, stream: bool, max_tokens: int) -> socket.socket:
  """A completion request on a raw socket; with `stream`, after its first two events."""
  body = json.dumps({"model": NAME, "prompt": PROMPTS[7], "max_tokens": max_tokens,
                     "temperature": 0, "ignore_eos": True, "stream": stream}).encode()
  sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
  sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
               + body)
  received = b""
  while stream and received.count(b"data: ") < 2:
    received += sock.recv(4096)
  return sock


def _wait_idle(server, timeout=10.0, **expected) -> dict:
  """/metrics once nothing runs or waits, every block is free and `expected` samples hold."""
  deadline = time.monotonic() + timeout
  while True:
    m = server.metrics()
    idle = m["llm_requests_running"] == m["llm_requests_waiting"] == 0
    if (idle and m["llm_kv_cache_blocks_used"] == 0
        and all(m.get(k) == v for k, v in expected.items())) or time.monotonic() > deadline:
      return m
    time.sleep(0.05)


def test_a_client_that_disconnects_cancels_its_request_and_frees_its_blocks(server):
  aborted = 'llm_choices_finished_total{finish_reason="abort"}'
  for stream in (True, False):
    before = server.metrics().get(aborted, 0)
    _send(server, stream, max_tokens=110).close()
    m = _wait_idle(server, **{aborted: before + 1})
    assert m.get(aborted) == before + 1, m
    assert m["llm_requests_running"] == 0 and m["llm_kv_cache_blocks_used"] == 0, m
  assert m["llm_kv_cache_blocks_total"] == 23


def test_two_hundred_requests_at_once_on_a_tiny_pool(server):
  rss_before = server.rss_mib()

  def one(i):
    return server.post("/v1/completions", {"model": NAME, "prompt": PROMPTS[i % 16],
                                           "max_tokens": 6, "temperature": 0.7, "seed": i,
                                           "ignore_eos": True})

  with concurrent.futures.ThreadPoolExecutor(200) as pool:
    results = list(pool.map(one, range(200)))
  assert [status for status, _ in results] == [200] * 200, results[:3]
  assert all(body["usage"]["completion_tokens"] == 6 for _, body in results)
  m = _wait_idle(server)
  assert m["llm_kv_cache_blocks_used"] == 0 and m["llm_requests_running"] == 0, m
  assert server.rss_mib() - rss_before < 300
  assert server.get("/health")[0] == 200


def test_sigterm_mid_stream_ends_the_stream_and_exits_cleanly(server):
  sock = _send(server, True, max_tokens=115)
  rest = []
  reader = threading.Thread(target=lambda: rest.extend(iter(lambda: sock.recv(65536), b"")))
  reader.start()
  server.process.terminate()
  started = time.monotonic()
  assert server.process.wait(10) == 0, server.log()
  assert time.monotonic() - started < 6
  reader.join(5)
  tail = b"".join(rest)
  assert b"data: [DONE]" in tail and not reader.is_alive(), tail[-300:]
  assert b'"finish_reason":"abort"' in tail or b'"finish_reason":"length"' in tail

"""A tiny HF checkpoint (random weights, a byte-level BPE tokenizer with ChatML tokens) and
`python -m llm.serve` serving it in a subprocess; stand-ins for the engine and the model, and
a request straight into the ASGI app, for the server's failure paths."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import jax
import numpy as np
from flax import nnx

from llm.interop.hf_checkpoint import save_hf_checkpoint
from llm.model.factory import abstract_model
from llm.serve.engine import Output
from tests.conftest import ROOT, micro_config

TEXT = ("The quick brown fox jumps over the lazy dog. A serving engine batches requests, "
        "pages its cache in blocks and streams tokens back as they come. def add(a, b): "
        "return a + b  # numbers 0123456789, punctuation !?;:'\"()[]{}<>\n")


def write_tiny_model(directory: str) -> str:
  """A 2-layer model of d=32 with a 128-token context; returns the folder."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=320, show_progress=False,
                                special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator([TEXT] * 20, trainer)
  os.makedirs(directory, exist_ok=True)
  tokenizer_json = os.path.join(directory, "tokenizer.source.json")
  tok.save(tokenizer_json)
  vocab = tok.get_vocab_size(with_added_tokens=True)
  config = micro_config(vocab_size=vocab, max_seq_len=128).model
  config.rope.original_max_seq_len = 128
  rng = np.random.default_rng(5)  # random weights without running the initialisers (faster)
  shapes = nnx.to_pure_dict(nnx.state(abstract_model(config), nnx.Param))
  params = jax.tree.map(lambda x: rng.normal(0, 0.5, x.shape).astype(x.dtype), shapes)
  eos = tok.token_to_id("<|endoftext|>")
  return save_hf_checkpoint(os.path.join(directory, "model"), config, params,
                            tokenizer_json=tokenizer_json, bos_id=eos, eos_id=eos)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:
  """`python -m llm.serve` on a free port; its output goes to `log_path`."""

  def __init__(self, args: list[str], log_path: str, api_key: str = ""):
    self.port, self.api_key = free_port(), api_key
    self.url = f"http://127.0.0.1:{self.port}"
    self.log_path = log_path
    self._log = open(log_path, "wb")
    self.process = subprocess.Popen(
        [sys.executable, "-m", "llm.serve", f"--port={self.port}", *args], cwd=ROOT,
        stdout=self._log, stderr=subprocess.STDOUT)
    self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

  @property
  def pid(self) -> int:
    return self.process.pid

  def log(self) -> str:
    with open(self.log_path, encoding="utf-8", errors="replace") as f:
      return f.read()

  def wait_ready(self, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.log()}")
      try:
        if self.get("/health")[0] == 200:
          return
      except OSError:
        pass
      time.sleep(0.2)
    raise TimeoutError(f"the server did not start:\n{self.log()}")

  def request(self, method: str, path: str, body: bytes | None = None,
              timeout: float = 60.0, auth: bool = True) -> tuple[int, bytes]:
    req = urllib.request.Request(self.url + path, data=body, method=method,
                                 headers={"Content-Type": "application/json",
                                          **(self.headers if auth else {})})
    try:
      with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, response.read()
    except urllib.error.HTTPError as e:
      return e.code, e.read()

  def get(self, path: str, **kw) -> tuple[int, bytes]:
    return self.request("GET", path, **kw)

  def post(self, path: str, obj, **kw) -> tuple[int, dict]:
    status, body = self.request("POST", path, json.dumps(obj).encode(), **kw)
    return status, json.loads(body)

  def metrics(self) -> dict[str, float]:
    """The samples of /metrics, by name with labels ('a_total{reason="x"}')."""
    text = self.get("/metrics")[1].decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}

  def rss_mib(self) -> float:
    with open(f"/proc/{self.pid}/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")

  def stop(self, timeout: float = 20.0) -> int:
    """SIGTERM, then the exit code (killed, and an error, after `timeout` seconds)."""
    if self.process.poll() is None:
      self.process.send_signal(signal.SIGTERM)
    try:
      return self.process.wait(timeout)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
      raise
    finally:
      self._log.close()


class FakeEngine:
  """Engine's interface: one token per request per step, 'x' each; `fail` makes step raise."""
  max_model_len = 64

  def __init__(self):
    self.requests, self.aborted, self.fail, self.broken = {}, [], False, False

  def add_request(self, request_id, prompt, params):
    if len(prompt) >= self.max_model_len:
      raise ValueError("the prompt is too long")
    self.requests[request_id] = [params.max_tokens, 0]

  def abort(self, request_id):
    self.aborted.append(request_id)
    self.requests.pop(request_id, None)

  def has_unfinished(self):
    return bool(self.requests)

  def step(self):
    time.sleep(0.002)
    if self.fail:
      raise RuntimeError("device lost")
    outs = []
    for rid, state in list(self.requests.items()):
      state[1] += 1
      done = state[1] == state[0]
      outs.append(Output(rid, 0, [7], "x", [], done, "length" if done else None, 3, state[1]))
      if done:
        del self.requests[rid]
    return outs

  def metrics(self):
    if self.broken:
      raise KeyError("a bug outside the engine step")
    return {}


class FakeServed:
  """ServedModel's interface, without a chat template."""
  can_chat = False

  class tokenizer:  # noqa: N801
    encode = staticmethod(lambda text: [3] * len(text))
    decode = staticmethod(lambda ids: "x" * len(ids))


async def asgi_post(app, path: str, body: dict) -> tuple[int, bytes]:
  """One POST straight into the ASGI app (no sockets); the client never disconnects."""
  incoming = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
  sent = []

  async def receive():
    if incoming:
      return incoming.pop()
    await asyncio.Event().wait()

  async def send(message):
    sent.append(message)

  scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
           "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
           "raw_path": path.encode(), "query_string": b"", "root_path": "",
           "headers": [(b"content-type", b"application/json")], "client": ("c", 1),
           "server": ("s", 80)}
  await app(scope, receive, send)
  return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

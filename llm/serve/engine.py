"""The serving engine: a plain object driven by a loop (`step`), with no threads of its own.

  engine = Engine.from_spec("smollm2")  # or gguf:PATH, hf:DIR, run:WORKDIR
  engine.add_request("r1", prompt_ids, SamplingParams(max_tokens=32, temperature=0))
  while engine.has_unfinished():
    for out in engine.step(): ...

Each step the scheduler picks the tokens to run (continuous batching, chunked prefill,
preemption), the model runner runs them over the paged KV cache and samples, and each sequence
that got a token is checked for its stop conditions. The HTTP server (server.py) runs this
loop in a background thread.
"""

import dataclasses
import itertools
import random
import time

from llm.serve.block_pool import BlockPool
from llm.serve.detokenizer import Detokenizer
from llm.serve.model_runner import ModelRunner
from llm.serve.sampling_params import SamplingParams
from llm.serve.scheduler import Scheduler, SchedulerConfig
from llm.serve.sequence import Sequence, Status


@dataclasses.dataclass(frozen=True)
class EngineConfig:
  block_size: int = 16
  num_blocks: int = 512  # KV-cache blocks, one reserved
  max_num_seqs: int = 16
  max_num_batched_tokens: int = 256
  max_model_len: int = 0  # 0: the model's max_seq_len
  prefix_caching: bool = True
  kv_dtype: str = "float32"
  static_batching: bool = False  # a baseline for benchmarks: no joining between steps


@dataclasses.dataclass
class TokenLogprob:
  token_id: int
  logprob: float
  top: list[tuple[int, float]]  # (token id, logprob), most likely first


@dataclasses.dataclass
class Output:
  """What one step produced for one choice of one request."""
  request_id: str
  index: int
  token_ids: list[int]
  text: str
  logprobs: list[TokenLogprob]
  finished: bool = False
  finish_reason: str | None = None
  prompt_tokens: int = 0
  completion_tokens: int = 0


class Engine:

  def __init__(self, graphdef, params, model_config, tokenizer, config=EngineConfig(),
               eos_ids=None):
    self.config, self.tokenizer = config, tokenizer
    self.max_model_len = config.max_model_len or model_config.max_seq_len
    self.eos_ids = tuple(eos_ids if eos_ids is not None else [tokenizer.eos_id])
    self.pool = BlockPool(config.num_blocks, config.block_size, config.prefix_caching)
    self.scheduler = Scheduler(SchedulerConfig(config.max_num_seqs,
                                               config.max_num_batched_tokens,
                                               self.max_model_len, config.static_batching),
                               self.pool)
    self.runner = ModelRunner(graphdef, params, model_config, num_blocks=config.num_blocks,
                              block_size=config.block_size, kv_dtype=config.kv_dtype,
                              eos_ids=self.eos_ids)
    self.requests: dict[str, list[Sequence]] = {}
    self._detok: dict[tuple[str, int], Detokenizer] = {}
    self._arrivals = itertools.count()
    self.stats = {"steps": 0, "prompt_tokens": 0, "generation_tokens": 0,
                  "step_seconds": 0.0, "finished": 0, "aborted": 0}

  @classmethod
  def from_spec(cls, spec: str, config=EngineConfig(), tokenizer_path: str = "",
                chat_template: str = ""):
    """An engine for anything the project loads: smollm2, gguf:PATH, hf:DIR, run:WORKDIR
    (chat_template: "" the model's own, "chatml" ours, or a Jinja file)."""
    from llm.serve.models import load_served_model
    served = load_served_model(spec, tokenizer_path, chat_template)
    engine = cls(served.graphdef, served.params, served.model_config, served.tokenizer,
                 config, eos_ids=served.stop_ids)
    engine.served = served
    return engine

  def add_request(self, request_id: str, prompt: list[int], params: SamplingParams) -> None:
    """Queues a request (n sequences); raises ValueError when it cannot be served."""
    if request_id in self.requests:
      raise ValueError(f"request id {request_id!r} is already in use")
    if not prompt:
      raise ValueError("the prompt is empty")
    if len(prompt) >= self.max_model_len:
      raise ValueError(f"the prompt has {len(prompt)} tokens, but this model's context is "
                       f"{self.max_model_len} tokens; shorten the prompt")
    longest = min(len(prompt) + params.max_tokens, self.max_model_len)
    if -(-longest // self.config.block_size) > self.config.num_blocks - 1:
      raise ValueError(f"{longest} tokens need more than the KV cache's "
                       f"{self.config.num_blocks - 1} blocks of {self.config.block_size}; "
                       "lower max_tokens or start the server with more num_blocks")
    for name, ids in (("prompt", prompt), ("stop_token_ids", params.stop_token_ids)):
      if ids and (max(ids) >= self.runner.vocab_size or min(ids) < 0):
        raise ValueError(f"{name} token ids must be in [0, {self.runner.vocab_size})")
    seed = random.getrandbits(31) if params.seed is None else params.seed
    seqs = [Sequence(request_id, i, list(prompt), params, (seed + 7919 * i) % 2**32,
                     next(self._arrivals)) for i in range(params.n)]
    self.requests[request_id] = seqs
    for seq in seqs:
      self._detok[request_id, seq.index] = Detokenizer(self.tokenizer, params.stop)
      self.scheduler.add(seq)

  def abort(self, request_id: str) -> None:
    """Cancels a request (a client went away): its sequences stop and free their blocks."""
    for seq in self.requests.pop(request_id, []):
      if seq.status is not Status.FINISHED:
        self.scheduler.finish(seq, "abort")
        self.stats["aborted"] += 1
      self._detok.pop((request_id, seq.index), None)

  def has_unfinished(self) -> bool:
    return self.scheduler.has_work()

  def step(self) -> list[Output]:
    """Runs one batch; returns an Output for every sequence that sampled a token."""
    scheduled = self.scheduler.schedule()
    if not scheduled:
      return []
    start = time.perf_counter()
    sampled = self.runner.execute(scheduled)
    self.stats["step_seconds"] += time.perf_counter() - start
    self.stats["steps"] += 1
    outputs = []
    for row, item in enumerate(scheduled):
      seq, samples = item.seq, item.samples
      seq.computed += item.tokens
      seq.register_full_blocks(self.pool)
      if not samples:
        continue
      if len(seq.output) == 0 and seq.preemptions == 0:
        self.stats["prompt_tokens"] += len(seq.prompt)
      outputs.append(self._append(seq, sampled, row))
    return outputs

  def _append(self, seq: Sequence, sampled, row: int) -> Output:
    token = int(sampled.tokens[row])
    seq.output.append(token)
    self.stats["generation_tokens"] += 1
    p = seq.params
    logprob = None
    if p.logprobs is not None:
      top = [(int(i), float(v)) for i, v in zip(sampled.top_ids[row][:p.logprobs],
                                                sampled.top_logprobs[row][:p.logprobs])]
      logprob = TokenLogprob(token, float(sampled.logprob[row]), top)
    stop_token = token in p.stop_token_ids or (token in self.eos_ids and not p.ignore_eos)
    reason = None
    if stop_token and len(seq.output) > p.min_tokens - 1:
      reason = "stop"
    elif len(seq.output) >= p.max_tokens or len(seq.tokens) >= self.max_model_len:
      reason = "length"
    detok = self._detok[seq.request_id, seq.index]
    text_ids = seq.output[:-1] if reason == "stop" else seq.output
    text, hit = detok.update(text_ids, final=reason is not None)
    if hit:
      reason = "stop"
    out = Output(seq.request_id, seq.index, [token], text, [logprob] if logprob else [],
                 prompt_tokens=len(seq.prompt), completion_tokens=len(seq.output))
    if reason is not None:
      self.scheduler.finish(seq, reason)
      self.stats["finished"] += 1
      out.finished, out.finish_reason = True, reason
      self._forget_if_done(seq.request_id)
    return out

  def _forget_if_done(self, request_id: str) -> None:
    seqs = self.requests.get(request_id, [])
    if all(s.status is Status.FINISHED for s in seqs):
      self.requests.pop(request_id, None)
      for s in seqs:
        self._detok.pop((request_id, s.index), None)

  def metrics(self) -> dict:
    """Gauges for /metrics and reports."""
    return {"running": len(self.scheduler.running), "waiting": len(self.scheduler.waiting),
            "kv_blocks_used": self.pool.num_used, "kv_blocks_total": self.pool.num_blocks - 1,
            "prefix_hit_rate": self.pool.hit_rate, "preemptions": self.scheduler.preemptions,
            "compilations": self.runner.compilations, **self.stats}

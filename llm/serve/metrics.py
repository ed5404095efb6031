"""Prometheus metrics of the server, in a registry of their own (GET /metrics).

Gauges: llm_requests_running, llm_requests_waiting, llm_kv_cache_blocks_used,
llm_kv_cache_blocks_total, llm_prefix_cache_hit_rate, llm_engine_compilations,
llm_generation_tokens_per_second (over the last 10 s). Counters: llm_prompt_tokens_total,
llm_generation_tokens_total, llm_preemptions_total, llm_engine_steps_total,
llm_choices_finished_total{finish_reason}, llm_requests_rejected_total{reason}. Histograms:
llm_time_to_first_token_seconds, llm_inter_token_latency_seconds, llm_request_latency_seconds.
With a guard (guarded.py): counters llm_guard_refusals_total{reason} (prompt: the prompt was
flagged; response: no sample passed), llm_guard_samples_total (samples judged) and
llm_guard_redraws_total (samples flagged before one passed, all of them when none did), and
the histogram llm_guard_latency_seconds (one guard call).
"""

import collections
import threading
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)

from llm.serve.async_engine import Observer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REQUEST_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics(Observer):
  """Fed by the AsyncEngine's engine thread; rendered by the server."""

  content_type = CONTENT_TYPE_LATEST

  def __init__(self, window_s: float = 10.0):
    self.registry = r = CollectorRegistry()
    self.window_s = window_s
    self.running = Gauge("llm_requests_running", "Requests generating tokens.", registry=r)
    self.waiting = Gauge("llm_requests_waiting", "Requests waiting for their first token.",
                         registry=r)
    self.kv_used = Gauge("llm_kv_cache_blocks_used", "KV-cache blocks held by requests.",
                         registry=r)
    self.kv_total = Gauge("llm_kv_cache_blocks_total", "KV-cache blocks in the pool.",
                          registry=r)
    self.hit_rate = Gauge("llm_prefix_cache_hit_rate",
                          "Prefix-cache lookups (in blocks) that found a cached block.",
                          registry=r)
    self.prompt_tokens = Counter("llm_prompt_tokens", "Prompt tokens computed.", registry=r)
    self.generation_tokens = Counter("llm_generation_tokens", "Tokens generated.", registry=r)
    self.preemptions = Counter("llm_preemptions", "Sequences preempted for KV-cache room.",
                               registry=r)
    self.steps = Counter("llm_engine_steps", "Engine steps (batches) run.", registry=r)
    self.compilations = Gauge("llm_engine_compilations", "Step programs compiled (one per "
                              "shape bucket).", registry=r)
    self.finished = Counter("llm_choices_finished", "Choices (n per request) that ended.",
                            ["finish_reason"], registry=r)
    self.rejected = Counter("llm_requests_rejected", "Requests turned away before running.",
                            ["reason"], registry=r)
    self.tokens_per_second = Gauge("llm_generation_tokens_per_second",
                                   f"Tokens generated per second over the last {window_s:g} s.",
                                   registry=r)
    self.tokens_per_second.set_function(self._rate)
    self.ttft = Histogram("llm_time_to_first_token_seconds", "Submit to first token.",
                          buckets=LATENCY_BUCKETS, registry=r)
    self.itl = Histogram("llm_inter_token_latency_seconds", "Between two tokens of a choice.",
                         buckets=LATENCY_BUCKETS, registry=r)
    self.latency = Histogram("llm_request_latency_seconds", "Submit to the request's end.",
                             buckets=REQUEST_BUCKETS, registry=r)
    self.guard_refusals = Counter("llm_guard_refusals", "Requests the guard refused: for their "
                                  "prompt, or for their response (no sample passed).",
                                  ["reason"], registry=r)
    for reason in ("prompt", "response"):
      self.guard_refusals.labels(reason=reason)
    self.guard_samples = Counter("llm_guard_samples", "Sampled responses the guard judged.",
                                 registry=r)
    self.guard_redraws = Counter("llm_guard_redraws", "Samples the guard flagged before one "
                                 "passed (all of them when none did).", registry=r)
    self.guard_latency = Histogram("llm_guard_latency_seconds", "One guard call.",
                                   buckets=LATENCY_BUCKETS, registry=r)
    self._seen = dict.fromkeys(("prompt_tokens", "generation_tokens", "preemptions", "steps"), 0)
    self._lock = threading.Lock()
    # (time, generation tokens so far): the first is the baseline at or before the window
    self._window = collections.deque([(time.monotonic(), 0)])

  def first_token(self, seconds: float) -> None:
    self.ttft.observe(seconds)

  def inter_token(self, seconds: float) -> None:
    self.itl.observe(seconds)

  def choice_finished(self, reason: str) -> None:
    self.finished.labels(finish_reason=reason).inc()

  def request_done(self, seconds: float) -> None:
    self.latency.observe(seconds)

  def reject(self, reason: str) -> None:
    self.rejected.labels(reason=reason).inc()

  def guard_refused(self, reason: str) -> None:
    self.guard_refusals.labels(reason=reason).inc()

  def guard_judged(self, samples: int, redraws: int) -> None:
    self.guard_samples.inc(samples)
    self.guard_redraws.inc(redraws)

  def guard_seconds(self, seconds: float) -> None:
    self.guard_latency.observe(seconds)

  def engine_state(self, stats: dict, running: int, waiting: int) -> None:
    self.running.set(running)
    self.waiting.set(waiting)
    self.kv_used.set(stats["kv_blocks_used"])
    self.kv_total.set(stats["kv_blocks_total"])
    self.hit_rate.set(stats["prefix_hit_rate"])
    self.compilations.set(stats["compilations"])
    counters = {"prompt_tokens": self.prompt_tokens, "generation_tokens": self.generation_tokens,
                "preemptions": self.preemptions, "steps": self.steps}
    for key, counter in counters.items():
      if stats[key] > self._seen[key]:
        counter.inc(stats[key] - self._seen[key])
        self._seen[key] = stats[key]
    now = time.monotonic()
    with self._lock:
      if self._window[-1][1] != stats["generation_tokens"]:
        self._window.append((now, stats["generation_tokens"]))
      self._trim(now)

  def _trim(self, now: float) -> None:
    while len(self._window) > 1 and self._window[1][0] <= now - self.window_s:
      self._window.popleft()

  def _rate(self) -> float:
    now = time.monotonic()
    with self._lock:
      self._trim(now)
      start, base = self._window[0]
      tokens = self._window[-1][1] - base
    return tokens / max(min(self.window_s, now - start), 1e-3)

  def render(self) -> bytes:
    return generate_latest(self.registry)

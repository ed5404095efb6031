"""Iteration-level (continuous) batching: which sequences run how many tokens this step.

Each step has a token budget (`max_num_batched_tokens`). Running sequences come first, oldest
first: a decode takes one token, an unfinished prompt the next chunk that fits. Waiting
sequences then join first-come-first-served while the budget, `max_num_seqs` and free blocks
allow, their prompt chunked to what is left of the budget. When a running sequence needs a
block and none is free, the newest running sequence is preempted: its blocks are freed and it
goes back to the front of the queue, to be recomputed from its tokens later (as vLLM does).
"""

import collections
import dataclasses

from llm.serve.block_pool import BlockPool
from llm.serve.sequence import Sequence, Status


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
  max_num_seqs: int = 16
  max_num_batched_tokens: int = 256
  max_model_len: int = 2048
  static_batching: bool = False  # baseline: admit only when the whole batch has finished


@dataclasses.dataclass
class Scheduled:
  """A sequence and how many of its pending tokens run this step."""
  seq: Sequence
  tokens: int

  @property
  def samples(self) -> bool:
    """Whether this step reaches its last token, so a new token is sampled."""
    return self.tokens == self.seq.remaining


class Scheduler:

  def __init__(self, config: SchedulerConfig, pool: BlockPool):
    self.config, self.pool = config, pool
    self.waiting: collections.deque[Sequence] = collections.deque()
    self.running: list[Sequence] = []
    self.preemptions = 0

  def add(self, seq: Sequence) -> None:
    self.waiting.append(seq)

  def has_work(self) -> bool:
    return bool(self.waiting or self.running)

  def schedule(self) -> list[Scheduled]:
    budget = self.config.max_num_batched_tokens
    out: list[Scheduled] = []
    preemptions = self.preemptions
    self.running.sort(key=lambda s: s.arrival)  # oldest first; the newest is preempted
    for seq in list(self.running):
      if seq.status is not Status.RUNNING:
        continue  # preempted earlier in this loop
      tokens = min(seq.remaining, budget)
      if tokens == 0:
        continue
      if self._reserve(seq, tokens):
        out.append(Scheduled(seq, tokens))
        budget -= tokens
    if self.config.static_batching and self.running:
      return out
    if self.preemptions == preemptions:  # no room to spare when blocks just ran out
      self._admit(out, budget)
    return out

  def _reserve(self, seq: Sequence, tokens: int) -> bool:
    """Allocates the blocks `seq` needs for `tokens` more, preempting the newest running
    sequences while none are free. False if `seq` itself had to be preempted."""
    needed = seq.blocks_needed(tokens, self.pool.block_size)
    while needed > self.pool.num_free:
      victim = max((s for s in self.running if s.status is Status.RUNNING),
                   key=lambda s: s.arrival)
      self.preempt(victim)
      if victim is seq:
        return False
    seq.blocks.extend(self.pool.allocate() for _ in range(needed))
    return True

  def preempt(self, seq: Sequence) -> None:
    """Frees its blocks and puts it back at the front of the queue (recompute later)."""
    seq.free(self.pool)
    seq.status = Status.WAITING
    seq.preemptions += 1
    self.preemptions += 1
    self.running.remove(seq)
    position = sum(1 for s in self.waiting if s.arrival < seq.arrival)
    self.waiting.insert(position, seq)

  def _admit(self, out: list[Scheduled], budget: int) -> None:
    static = self.config.static_batching  # the whole batch joins now, prefilled in chunks
    while self.waiting and (budget > 0 or static) and len(self.running) < self.config.max_num_seqs:
      seq = self.waiting[0]
      if not seq.blocks:
        seq.take_cached_prefix(self.pool)
      tokens = min(seq.remaining, budget)
      needed = seq.blocks_needed(tokens, self.pool.block_size)
      if needed > self.pool.num_free:
        if not self.running:  # nothing will ever free up: never a deadlock, so fail loudly
          raise RuntimeError(
              f"the KV cache ({self.pool.num_blocks - 1} blocks of {self.pool.block_size}) "
              f"cannot hold one sequence of {len(seq.tokens)} tokens; raise num_blocks")
        seq.free(self.pool)  # give cached-prefix references back until it can run
        break
      seq.blocks.extend(self.pool.allocate() for _ in range(needed))
      self.waiting.popleft()
      seq.status = Status.RUNNING
      self.running.append(seq)
      if tokens:
        out.append(Scheduled(seq, tokens))
        budget -= tokens

  def finish(self, seq: Sequence, reason: str) -> None:
    """Ends `seq` (done, stopped or cancelled) and returns its blocks."""
    if seq.status is Status.RUNNING:
      self.running.remove(seq)
    elif seq.status is Status.WAITING:
      self.waiting.remove(seq)
    seq.free(self.pool)
    seq.status, seq.finish_reason = Status.FINISHED, reason

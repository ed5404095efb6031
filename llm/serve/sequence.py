"""One sequence the engine generates: its tokens, its blocks and how far its cache is computed."""

import dataclasses
import enum

from llm.serve.block_pool import BlockPool, block_key
from llm.serve.sampling_params import SamplingParams


class Status(enum.Enum):
  WAITING = "waiting"
  RUNNING = "running"
  FINISHED = "finished"


@dataclasses.dataclass
class Sequence:
  """A request has n of these (one per choice). `computed` tokens have keys/values in the
  cache; the rest of `tokens` still has to run (a prompt chunk, or the last sampled token)."""
  request_id: str
  index: int  # which choice of the request
  prompt: list[int]
  params: SamplingParams
  seed: int
  arrival: int  # global order, for FCFS and for picking the newest to preempt
  output: list[int] = dataclasses.field(default_factory=list)
  blocks: list[int] = dataclasses.field(default_factory=list)
  keys: list[bytes] = dataclasses.field(default_factory=list)  # of the first full blocks
  computed: int = 0
  status: Status = Status.WAITING
  finish_reason: str | None = None
  preemptions: int = 0

  @property
  def tokens(self) -> list[int]:
    return self.prompt + self.output

  @property
  def remaining(self) -> int:
    """Tokens to run before the next token can be sampled."""
    return len(self.prompt) + len(self.output) - self.computed

  def blocks_needed(self, new_tokens: int, block_size: int) -> int:
    return max(0, -(-(self.computed + new_tokens) // block_size) - len(self.blocks))

  def take_cached_prefix(self, pool: BlockPool) -> None:
    """Starts a fresh sequence on the cached blocks of its longest cached prefix (never its
    last token: that one runs, so the step has logits to sample from)."""
    tokens, size = self.tokens, pool.block_size
    parent = b""
    for start in range(0, (len(tokens) - 1) // size * size, size):
      key = block_key(parent, tokens[start:start + size])
      block = pool.lookup(key)
      if block is None:
        break
      self.blocks.append(block)
      self.keys.append(key)
      parent = key
    self.computed = len(self.blocks) * size

  def register_full_blocks(self, pool: BlockPool) -> None:
    """Gives every newly completed block its prefix key, so later requests can share it."""
    tokens, size = self.tokens, pool.block_size
    while len(self.keys) < self.computed // size:
      i = len(self.keys)
      key = block_key(self.keys[-1] if self.keys else b"", tokens[i * size:(i + 1) * size])
      pool.register(self.blocks[i], key)
      self.keys.append(key)

  def free(self, pool: BlockPool) -> None:
    """Returns its blocks (last first, so a prefix's tail is evicted before its head)."""
    for block in reversed(self.blocks):
      pool.release(block)
    self.blocks, self.keys, self.computed = [], [], 0

"""The paged KV cache's bookkeeping: a fixed pool of blocks with reference counts, and the
prefix cache that lets requests share full blocks of identical tokens.

A full block is keyed by a hash of (its parent block's key, its tokens), so a key names the
whole prefix up to the block's end. A block whose last user leaves keeps its key and waits in
an LRU list; a request with the same prefix picks it up again, and it is recycled (oldest
first) only when no never-used block is left. Block 0 is never handed out: padding tokens of a
batch write their keys and values there.
"""

import collections
import hashlib
import struct

NULL_BLOCK = 0


def block_key(parent: bytes, tokens) -> bytes:
  """The prefix-cache key of a full block after the block keyed `parent` (b"" for the first)."""
  return hashlib.sha256(parent + struct.pack(f"<{len(tokens)}i", *tokens)).digest()


class OutOfBlocks(RuntimeError):
  pass


class BlockPool:

  def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True):
    if num_blocks < 2:
      raise ValueError(f"num_blocks must be >= 2 (block 0 is reserved), got {num_blocks}")
    self.num_blocks, self.block_size = num_blocks, block_size
    self.prefix_caching = prefix_caching
    self.ref_counts = [0] * num_blocks
    self._free = collections.deque(range(1, num_blocks))  # never cached: handed out first
    self._evictable = collections.OrderedDict()  # cached, unreferenced; oldest first
    self._by_key: dict[bytes, int] = {}
    self._key_of: dict[int, bytes] = {}
    self.queries = self.hits = 0  # prefix-cache lookups, in blocks

  @property
  def num_free(self) -> int:
    """Blocks an allocation can take now (never used, or cached but unreferenced)."""
    return len(self._free) + len(self._evictable)

  @property
  def num_used(self) -> int:
    return self.num_blocks - 1 - self.num_free

  def allocate(self) -> int:
    """A fresh block with reference count 1 (evicts the least recently used cached block when
    no never-used one is left)."""
    if self._free:
      block = self._free.popleft()
    elif self._evictable:
      block, _ = self._evictable.popitem(last=False)
      del self._by_key[self._key_of.pop(block)]
    else:
      raise OutOfBlocks("no free KV-cache block")
    self.ref_counts[block] = 1
    return block

  def release(self, block: int) -> None:
    """Drops one reference; an unreferenced block stays cached (LRU) if it has a key."""
    self.ref_counts[block] -= 1
    if self.ref_counts[block] < 0:
      raise RuntimeError(f"block {block} released more often than taken")
    if self.ref_counts[block] == 0:
      if block in self._key_of:
        self._evictable[block] = None
      else:
        self._free.append(block)

  def lookup(self, key: bytes) -> int | None:
    """The cached block holding `key`'s prefix, with a reference taken; None on a miss."""
    self.queries += 1
    block = self._by_key.get(key) if self.prefix_caching else None
    if block is None:
      return None
    self.hits += 1
    if self.ref_counts[block] == 0:
      del self._evictable[block]
    self.ref_counts[block] += 1
    return block

  def register(self, block: int, key: bytes) -> None:
    """Marks a full block as holding `key`'s prefix (a key already cached keeps its block)."""
    if self.prefix_caching and key not in self._by_key and block not in self._key_of:
      self._by_key[key] = block
      self._key_of[block] = key

  @property
  def hit_rate(self) -> float:
    return self.hits / self.queries if self.queries else 0.0

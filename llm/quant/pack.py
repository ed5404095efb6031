"""Packing grid integers into bytes: `bits` bits per value, little-endian within each byte.

Eight values take exactly `bits` bytes, so int4 stores two values per byte, int2 four, int3
eight values in three bytes, and int8 one per byte. The last axis is packed; its length must
be a multiple of 8 (every layer width here is).
"""

import numpy as np


def pack(values: np.ndarray, bits: int) -> np.ndarray:
  """uint8 [..., n * bits / 8] from integers in [0, 2^bits) [..., n]."""
  values = np.asarray(values)
  if values.shape[-1] % 8:
    raise ValueError(f"the packed axis must be a multiple of 8, got {values.shape[-1]}")
  if values.size and (values.min() < 0 or values.max() >= 2 ** bits):
    raise ValueError(f"values must lie in [0, {2 ** bits}) to pack into {bits} bits")
  if bits == 8:
    return values.astype(np.uint8)
  bit_planes = (values[..., None].astype(np.uint8) >> np.arange(bits, dtype=np.uint8)) & 1
  flat = bit_planes.reshape(*values.shape[:-1], values.shape[-1] * bits)
  return np.packbits(flat, axis=-1, bitorder="little")


def unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
  """The `count` integers of the last axis back from `pack`, as uint8."""
  packed = np.asarray(packed, np.uint8)
  if bits == 8:
    return packed[..., :count]
  flat = np.unpackbits(packed, axis=-1, bitorder="little")[..., :count * bits]
  planes = flat.reshape(*packed.shape[:-1], count, bits)
  return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=-1).astype(np.uint8)

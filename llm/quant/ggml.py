"""llama.cpp's Q4_0 and Q8_0 blocks, from our codes on the matching grids (Grid.llama_cpp).

  Q4_0: 32 weights in 18 bytes: float16 d, then 16 bytes whose low nibbles are weights 0..15
        and high nibbles weights 16..31; w = d * (q - 8)
  Q8_0: 32 weights in 34 bytes: float16 d, then 32 signed bytes q; w = d * q

A GPTQ model quantized on these grids writes its own codes into the file, so llama.cpp reads
exactly the weights our model computes with.
"""

import numpy as np

BLOCK = 32


def to_blocks(codes: np.ndarray, scales: np.ndarray, kind: str) -> np.ndarray:
  """uint8 [rows, (cols / 32) * block bytes] from codes [rows, cols] and scales [rows, cols/32]."""
  rows, cols = codes.shape
  if cols % BLOCK or scales.shape != (rows, cols // BLOCK):
    raise ValueError(f"{kind}: rows of whole {BLOCK}-value blocks with one scale each, got "
                     f"codes {codes.shape} and scales {scales.shape}")
  d = scales.astype(np.float16).view(np.uint8).reshape(rows, -1, 2)
  q = codes.reshape(rows, -1, BLOCK).astype(np.int32)
  if kind == "q4_0":
    body = (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)
  elif kind == "q8_0":
    body = (q - 128).astype(np.int8).view(np.uint8)
  else:
    raise ValueError(f"unknown llama.cpp block kind {kind!r}")
  return np.concatenate([d, body], axis=-1).reshape(rows, -1)


def from_blocks(blocks: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
  """(codes [rows, cols], scales [rows, cols / 32]) back from `to_blocks`' bytes."""
  size = {"q4_0": 18, "q8_0": 34}[kind]
  rows = blocks.shape[0]
  b = blocks.reshape(rows, -1, size)
  scales = b[..., :2].copy().view(np.float16)[..., 0].astype(np.float64)
  if kind == "q4_0":
    body = b[..., 2:].astype(np.int32)
    codes = np.concatenate([body & 15, body >> 4], axis=-1)
  else:
    codes = b[..., 2:].copy().view(np.int8).astype(np.int32) + 128
  return codes.reshape(rows, -1).astype(np.uint8), scales

"""The integer grid weights are rounded onto: bits, groups along the input dimension, and
symmetric or asymmetric scales (the GPTQ reference's conventions).

Weights are [out, in] here (a row per output channel, as GPTQ writes them). A group is
`group_size` consecutive input columns sharing one scale and zero point per row; group_size 0
is one group per row ("per channel"); when the width does not divide the columns, the last
group is narrower (SmolLM2's 576 inputs are four groups of 128 and one of 64). A value w is stored as q = clip(round(w / s) + z, 0,
2^bits - 1) and read back as s * (q - z). Symmetric grids fix z at 2^(bits-1) and use the codes
z - (2^(bits-1) - 1) .. z + 2^(bits-1) - 1 (as llama.cpp's Q8_0 does).
"""

import dataclasses

import numpy as np


GGML = {"q4_0": 4, "q8_0": 8}  # llama.cpp's grids: symmetric, blocks of 32, float16 scales


@dataclasses.dataclass(frozen=True)
class Grid:
  bits: int = 4
  group_size: int = 128  # 0: per channel
  symmetric: bool = False
  ggml: str = ""  # "q4_0" or "q8_0": llama.cpp's own grid (bits 4/8, groups of 32)

  def __post_init__(self):
    if self.bits not in (2, 3, 4, 8):
      raise ValueError(f"bits must be 2, 3, 4 or 8, got {self.bits}")
    if self.group_size < 0:
      raise ValueError(f"group_size must be >= 0 (0: per channel), got {self.group_size}")
    if self.ggml and (GGML.get(self.ggml) != self.bits or self.group_size != 32):
      raise ValueError(f"the {self.ggml} grid is {GGML.get(self.ggml)} bits in groups of 32")

  @classmethod
  def llama_cpp(cls, kind: str) -> "Grid":
    """Q4_0: w = d (q - 8), d = (the signed largest-magnitude value) / -8; Q8_0: w = d (q - 128)
    with d = max|w| / 127. d is a float16 in the file, so it is rounded to one here."""
    if kind not in GGML:
      raise ValueError(f"llama.cpp grid {kind!r}: choose one of {sorted(GGML)}")
    return cls(GGML[kind], 32, True, kind)

  @property
  def max_q(self) -> int:
    return 2 ** self.bits - 1

  def group_width(self, columns: int) -> int:
    return self.group_size or columns


def fit(grid: Grid, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(scale, zero) per row of w [rows, cols] for one group: the grid spans each row's range
  (always including 0, so zero stays representable)."""
  if grid.ggml:
    return _fit_ggml(grid, w)
  low = np.minimum(w.min(axis=1), 0.0)
  high = np.maximum(w.max(axis=1), 0.0)
  if grid.symmetric:
    high = np.maximum(np.abs(low), high)
    low = -high
  degenerate = (low == 0) & (high == 0)
  low, high = np.where(degenerate, -1.0, low), np.where(degenerate, 1.0, high)
  if grid.symmetric:  # restricted range: the largest |w| lands on a code, never on a tie
    half = 2 ** (grid.bits - 1)
    return high / (half - 1), np.full(high.shape, float(half))
  scale = (high - low) / grid.max_q
  return scale, np.round(-low / scale)


def _fit_ggml(grid: Grid, w: np.ndarray):
  if grid.ggml == "q4_0":
    extreme = w[np.arange(len(w)), np.argmax(np.abs(w), axis=1)]
    scale, zero = extreme / -8.0, 8.0
  else:
    scale, zero = np.abs(w).max(axis=1) / 127.0, 128.0
  scale = scale.astype(np.float16).astype(np.float64)
  scale = np.where(scale == 0, 1.0, scale)  # an all-zero block: any scale, codes at zero
  return scale, np.full(scale.shape, zero)


def quantize(w, scale, zero, max_q: int) -> np.ndarray:
  """Integers on the grid for w [rows, k] with per-row scale/zero [rows]."""
  return np.clip(np.round(w / scale[:, None]) + zero[:, None], 0, max_q)


def dequantize(q, scale, zero) -> np.ndarray:
  return scale[:, None] * (q - zero[:, None])


def round_to_nearest(grid: Grid, w: np.ndarray):
  """RTN: every group rounded on its own grid. Returns (q [out, in] uint8, scales and zeros
  [out, groups])."""
  rows, cols = w.shape
  width = grid.group_width(cols)
  q, scales, zeros = np.empty(w.shape, np.uint8), [], []
  for start in range(0, cols, width):
    block = w[:, start:start + width]
    scale, zero = fit(grid, block)
    q[:, start:start + width] = quantize(block, scale, zero, grid.max_q)
    scales.append(scale)
    zeros.append(zero)
  return q, np.stack(scales, axis=1), np.stack(zeros, axis=1)


def dequantize_groups(q, scales, zeros, group_size: int) -> np.ndarray:
  """Weights [out, in] from grid integers and per-group scales/zeros [out, groups]."""
  width = group_size or q.shape[1]
  s = np.repeat(scales, width, axis=1)[:, :q.shape[1]]
  z = np.repeat(zeros, width, axis=1)[:, :q.shape[1]]
  return s * (q.astype(s.dtype) - z)

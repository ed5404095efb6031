"""GPTQ (Frantar et al., 2022): round a linear layer's weights column by column, each time
moving the rounding error onto the columns not yet rounded, weighted by the inverse Hessian of
the layer's inputs, so the layer's outputs on those inputs change as little as possible.

  H = 2 X X^T / n over calibration inputs X [in, n]; damped by `damp` x mean(diag H)
  U = upper Cholesky factor of H^-1 (its rows are the needed inverse-Hessian rows)
  for each column j: q_j = round(w_j); e = (w_j - q_j) / U_jj; W[:, j+1:] -= e U_j,j+1:

Columns are processed in blocks of `block_size` with lazy updates of the rest. `act_order`
takes columns in order of decreasing Hessian diagonal; groups are then fitted up front on the
original column order ("static groups"), so inference needs no permutation.
"""

import dataclasses
import math

import numpy as np

from llm.quant.grid import Grid, dequantize, fit, quantize


@dataclasses.dataclass(frozen=True)
class GPTQSettings:
  grid: Grid = Grid()
  damp: float = 0.01
  block_size: int = 128
  act_order: bool = False


def hessian(inputs: np.ndarray) -> np.ndarray:
  """2 X X^T / n from inputs [n, in] (rows are tokens), float64."""
  x = np.asarray(inputs, np.float64)
  return 2.0 * x.T @ x / max(len(x), 1)


def _inverse_cholesky(h: np.ndarray, damp: float) -> np.ndarray:
  h = h + damp * np.mean(np.diag(h)) * np.eye(len(h))
  return np.linalg.cholesky(np.linalg.inv(h)).T  # upper: U^T U = H^-1


def gptq(w: np.ndarray, h: np.ndarray, settings: GPTQSettings = GPTQSettings()):
  """Quantizes w [out, in] given the input Hessian h [in, in]. Returns (q [out, in] uint8,
  scales [out, groups], zeros [out, groups]) in the original column order."""
  grid = settings.grid
  w = np.array(w, np.float64)
  h = np.array(h, np.float64)
  rows, cols = w.shape
  width = grid.group_width(cols)
  dead = np.diag(h) == 0  # inputs that are always zero: their weights do not matter
  h[dead, dead] = 1.0
  w[:, dead] = 0.0
  fitted = [fit(grid, w[:, g:g + width]) for g in range(0, cols, width)]  # static groups
  order = np.argsort(-np.diag(h), kind="stable") if settings.act_order else np.arange(cols)
  w, h = w[:, order], h[np.ix_(order, order)]
  u = _inverse_cholesky(h, settings.damp)
  block = settings.block_size
  if width < block:
    block = block // width * width  # a group starts in the block that holds all of it
  elif width < cols and width % block:
    block = math.gcd(width, block)  # or at a block's start
  q = np.zeros((rows, cols), np.uint8)
  for start in range(0, cols, block):
    end = min(start + block, cols)
    w1, errors = w[:, start:end].copy(), np.zeros((rows, end - start))
    for i in range(end - start):
      column = start + i
      group = order[column] // width
      if not settings.act_order and column % width == 0:
        columns = np.concatenate([w1[:, i:], w[:, end:column + width]], axis=1)[:, :width]
        fitted[group] = fit(grid, columns)  # on the columns as updated so far
      scale, zero = fitted[group]
      ints = quantize(w1[:, i:i + 1], scale, zero, grid.max_q)
      q[:, order[column]] = ints[:, 0]
      error = (w1[:, i] - dequantize(ints, scale, zero)[:, 0]) / u[column, column]
      w1[:, i:] -= np.outer(error, u[column, column:end])
      errors[:, i] = error
    w[:, end:] -= errors @ u[start:end, end:]
  scales = np.stack([s for s, _ in fitted], axis=1)
  zeros = np.stack([z for _, z in fitted], axis=1)
  return q, scales, zeros

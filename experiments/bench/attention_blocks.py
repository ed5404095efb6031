"""Tile sizes for our Pallas attention on a GPU: a sweep against cuDNN measured in the same run.

  python experiments/bench/attention_blocks.py --json OUT.json --seconds 150

For T=4096 and head_dim in {64, 128} (16k tokens per batch, 2048 model width, causal, bf16):
first the forward tiles (block_q, block_k, warps, stages) with the forward pass alone, then
the backward tiles and their own warps and stages with the best forward kept, on
forward+backward. Each row is TFLOP/s and
the share of cuDNN; the default `BlockSizes.for_platform("gpu", d)` is measured too, so the
JSON shows what a better default would buy. Stops at the time budget, saving after each row.
"""

import argparse
import dataclasses
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from experiments.bench.attention import (MODEL_WIDTH, TOKENS, _tail, best_seconds,  # noqa: E402
                                         forward_and_backward, inputs)
from kernels.flash_attention import BlockSizes, attention_flops, flash_attention  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402

FORWARD_TILES = [(bq, bk, w, s) for (bq, bk), w, s in itertools.product(
    [(128, 64), (128, 128), (64, 64), (64, 128)], [4, 8], [2, 3])]
BACKWARD_TILES = [(bq, bk, w, s) for (bq, bk), w, s in itertools.product(
    [(64, 64), (64, 128), (32, 64), (32, 128)], [4, 8], [2, 3])]


def timed(fn, args, flops: float, repeats: int) -> dict:
  try:
    seconds = best_seconds(jax.jit(fn), args, repeats, inner=3)
    return {"ms": seconds * 1e3, "tflops": flops / seconds / 1e12}
  except Exception as e:  # a tile that does not fit (shared memory) is a result, not a crash
    return {"error": f"{type(e).__name__}: {_tail(str(e), 600)}"}


def ours(blocks: BlockSizes):
  return lambda q, k, v: flash_attention(q, k, v, causal=True, block_sizes=blocks)


def cudnn(q, k, v):
  return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")


def sweep_head_dim(head_dim: int, seq: int, repeats: int, deadline: float, rows: list, save,
                   tokens: int = TOKENS, width: int = MODEL_WIDTH, parts=("fwd", "bwd")):
  batch, heads = max(1, tokens // seq), max(1, width // head_dim)
  q, k, v, ct = inputs(batch, seq, heads, head_dim, jnp.bfloat16)
  default = BlockSizes.for_platform("gpu", head_dim)

  def record(mode, name, fn, blocks):
    flops = attention_flops(batch, seq, seq, heads, head_dim, causal=True,
                            backward=mode == "forward_backward")
    args = (q, k, v) if mode == "forward" else (q, k, v, ct)
    step = fn if mode == "forward" else forward_and_backward(fn)
    row = {"head_dim": head_dim, "seq": seq, "mode": mode, "name": name,
           "blocks": None if blocks is None else dataclasses.asdict(blocks),
           **timed(step, args, flops, repeats)}
    rows.append(row)
    save()
    print(f"d={head_dim} {mode} {name}: " + (f"{row['tflops']:.1f} TFLOP/s" if "tflops" in row
                                              else row["error"][:200]), flush=True)
    return row.get("tflops", 0.0)

  for mode in ("forward", "forward_backward"):
    record(mode, "cudnn", cudnn, None)
    record(mode, "default", ours(default), default)
  best, best_tflops = default, 0.0
  for bq, bk, warps, stages in FORWARD_TILES if "fwd" in parts else ():
    if time.time() > deadline:
      return
    blocks = BlockSizes(bq, bk, default.block_q_bwd, default.block_k_bwd, warps, stages,
                        default.num_warps_bwd, default.num_stages_bwd)
    tflops = record("forward", f"fwd {bq}x{bk} w{warps} s{stages}", ours(blocks), blocks)
    if tflops > best_tflops:
      best, best_tflops = blocks, tflops
  for bq, bk, warps, stages in BACKWARD_TILES if "bwd" in parts else ():
    if time.time() > deadline:
      return
    blocks = dataclasses.replace(best, block_q_bwd=bq, block_k_bwd=bk, num_warps_bwd=warps,
                                 num_stages_bwd=stages)
    record("forward_backward", f"bwd {bq}x{bk} w{warps} s{stages}", ours(blocks), blocks)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--seconds", type=float, default=150.0, help="time budget for the sweep")
  parser.add_argument("--seq", type=int, default=4096)
  parser.add_argument("--head_dims", default="64,128")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--tokens", type=int, default=TOKENS, help="tokens per batch")
  parser.add_argument("--width", type=int, default=MODEL_WIDTH, help="heads x head_dim")
  parser.add_argument("--parts", default="fwd,bwd", help="fwd: forward tiles; bwd: backward")
  args = parser.parse_args()
  result = {"devices": [str(d) for d in jax.devices()], "jax": jax.__version__, "rows": []}
  save = lambda: write_json_atomic(args.json, result, indent=2)  # noqa: E731
  head_dims = [int(d) for d in args.head_dims.split(",")]
  start = time.time()
  for i, head_dim in enumerate(head_dims):  # an equal share of the budget per head_dim
    deadline = start + args.seconds * (i + 1) / len(head_dims)
    sweep_head_dim(head_dim, args.seq, args.repeats, deadline, result["rows"], save,
                   args.tokens, args.width, args.parts.split(","))
  save()
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

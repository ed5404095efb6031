"""Attention kernels, measured: ours (Pallas; Triton forward) against jax.nn.dot_product_attention
(xla and cudnn) and JAX's bundled Pallas `mha`, causal, bf16, as TFLOP/s.

  python experiments/bench/attention.py --json OUT.json          # GPU: about 3-5 minutes
  python experiments/bench/attention.py --json OUT.json --check  # any platform: correctness only

On a GPU: for T in {1k, 4k, 8k} and head_dim in {64, 128} (16k tokens per batch, 2048 model
width, so heads = 2048 / head_dim), forward and forward+backward, each implementation's best
time over several timed runs, TFLOP/s by the FlashAttention convention (causal halves the
work, backward = 2.5x forward), the share of cuDNN's throughput, and the bf16 matmul peak
measured in the same run. Implementations that fail to compile are reported with their error.

Everywhere (and with --check on CPU, in interpret mode): each implementation's output and
gradients against an f32 reference on a small packed-sequence shape.
"""

import argparse
import functools
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from kernels.attention_reference import reference_attention  # noqa: E402
from kernels.flash_attention import attention_flops, flash_attention  # noqa: E402
from kernels.platform import backend_name  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.train.flops import measure_matmul_peak  # noqa: E402

MODEL_WIDTH, TOKENS = 2048, 16384


def _tail(message: str, keep: int = 1500) -> str:
  """The end of an error message: compilers (Triton) put the cause after a long preamble."""
  return message if len(message) <= keep else "..." + message[-keep:]


def bundled_mha(q, k, v, causal=True):
  """JAX's example Pallas attention (GPU, Triton lowering); MHA only, T % 128 == 0."""
  from jax.experimental.pallas.ops.gpu import attention
  return attention.mha(q, k, v, None, sm_scale=q.shape[-1] ** -0.5, causal=causal,
                       interpret=backend_name() == "cpu")


def implementations(platform: str) -> dict:
  """name -> attention(q, k, v) with the model's layout [b, t, h, d], causal."""
  impls = {"ours_pallas": lambda q, k, v: flash_attention(q, k, v, causal=True),
           "xla": lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                                                  implementation="xla"),
           "pallas_mha_bundled": bundled_mha}
  if platform == "gpu":
    impls["ours_triton_fwd"] = lambda q, k, v: flash_attention(q, k, v, causal=True,
                                                               forward="triton")
    impls["cudnn"] = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True,
                                                                    implementation="cudnn")
  return impls


def inputs(batch, seq, heads, head_dim, dtype, seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  shape = (batch, seq, heads, head_dim)
  return tuple(jax.random.normal(key, shape, dtype) for key in keys)  # q, k, v, cotangent


def forward_and_backward(fn):
  def run(q, k, v, cotangent):
    out, vjp = jax.vjp(fn, q, k, v)
    return out, vjp(cotangent.astype(out.dtype))
  return run


def best_seconds(fn, args, repeats: int, inner: int) -> float:
  """Best over `repeats` of the mean over `inner` back-to-back calls (compile excluded)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(inner):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / inner)
  return best


def check(impls: dict, dtype) -> dict:
  """Each implementation against the f32 reference on [2, 256, 4, 64], outputs and gradients."""
  q, k, v, ct = inputs(2, 256, 4, 64, dtype, seed=1)
  f32 = [a.astype(jnp.float32) for a in (q, k, v, ct)]
  ref_out, ref_grads = forward_and_backward(
      functools.partial(reference_attention, causal=True))(*f32)
  results = {}
  for name, fn in impls.items():
    try:
      out, grads = jax.jit(forward_and_backward(fn))(q, k, v, ct)
    except Exception as e:  # report and go on: one missing backend must not hide the rest
      results[name] = {"error": f"{type(e).__name__}: {_tail(str(e))}"}
      continue
    results[name] = {
        "out_max_abs_err": float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref_out))),
        "grad_max_abs_err": [float(jnp.max(jnp.abs(g.astype(jnp.float32) - r)))
                             for g, r in zip(grads, ref_grads)]}
    print(f"check {name}: {results[name]}", flush=True)
  return results


def measure(impls: dict, seqs, head_dims, repeats: int, rows: list, save, *,
            tokens: int = TOKENS, width: int = MODEL_WIDTH) -> None:
  """Appends one row per (T, head_dim, mode) to `rows`, calling save() after each."""
  for seq in seqs:
    for head_dim in head_dims:
      batch, heads = max(1, tokens // seq), max(1, width // head_dim)
      q, k, v, ct = inputs(batch, seq, heads, head_dim, jnp.bfloat16)
      for mode in ("forward", "forward_backward"):
        flops = attention_flops(batch, seq, seq, heads, head_dim, causal=True,
                                backward=mode == "forward_backward")
        row = {"seq": seq, "head_dim": head_dim, "batch": batch, "heads": heads, "mode": mode,
               "flops": flops}
        for name, fn in impls.items():
          step = jax.jit(fn if mode == "forward" else forward_and_backward(fn))
          args = (q, k, v) if mode == "forward" else (q, k, v, ct)
          try:
            seconds = best_seconds(step, args, repeats, inner=3)
            row[name] = {"ms": seconds * 1e3, "tflops": flops / seconds / 1e12}
          except Exception as e:
            row[name] = {"error": f"{type(e).__name__}: {_tail(str(e))}"}
        if "tflops" in row.get("cudnn", {}):
          for name in impls:
            if "tflops" in row[name]:
              row[name]["of_cudnn"] = row[name]["tflops"] / row["cudnn"]["tflops"]
        rows.append(row)
        save()
        print(" ".join([f"T={seq} d={head_dim} {mode}:"] + [
            f"{n}={row[n]['tflops']:.1f}" if "tflops" in row[n] else f"{n}=error"
            for n in impls]), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--check", action="store_true", help="correctness only, no timings")
  parser.add_argument("--seqs", default="1024,4096,8192")
  parser.add_argument("--head_dims", default="64,128")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  platform = backend_name()
  impls = implementations(platform)
  result = {"platform": platform, "devices": [str(d) for d in jax.devices()],
            "jax": jax.__version__}
  result["check_bf16" if platform != "cpu" else "check_f32_interpret"] = check(
      impls, jnp.bfloat16 if platform != "cpu" else jnp.float32)
  write_json_atomic(args.json, result, indent=2)
  if args.check or platform == "cpu":
    print("correctness only (timings need a GPU)" if platform == "cpu" else "correctness only")
    return
  result["bf16_matmul_peak_tflops"] = measure_matmul_peak("bfloat16", 8192, 10) / 1e12
  print(f"bf16 matmul peak {result['bf16_matmul_peak_tflops']:.0f} TFLOP/s", flush=True)
  result["runs"] = []
  try:
    measure(impls, [int(s) for s in args.seqs.split(",")],
            [int(d) for d in args.head_dims.split(",")], args.repeats, result["runs"],
            lambda: write_json_atomic(args.json, result, indent=2))
  except Exception:
    result["error"] = traceback.format_exc()[-2000:]
    raise
  finally:
    write_json_atomic(args.json, result, indent=2)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

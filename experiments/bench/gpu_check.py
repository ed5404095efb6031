"""GPU checks: cuDNN attention against the XLA reference, and train-step throughput on the GPU.

  python experiments/bench/gpu_check.py --json OUT.json

Measures the GPU's bf16 matmul peak in the same run and reports MFU against it, and records
the device kind and library versions. Each step is waited on, on synthetic rows; the full loop
(data, evaluation, checkpoints, resume) is timed by gpu_loop.py, in its own processes, since
this one holds most of the GPU's memory once JAX starts.
"""

import argparse
import pathlib
import sys
import time

BENCH = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import train_step as bench  # noqa: E402
from versions import library_versions, machine  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.model import build_model  # noqa: E402
from llm.model.attention import attend, attention_mask  # noqa: E402
from llm.train.flops import measure_matmul_peak  # noqa: E402


def _tail(message: str, keep: int = 1500) -> str:
  """The end of an error message: compilers (Triton) put the cause after a long preamble."""
  return message if len(message) <= keep else "..." + message[-keep:]


def packed_inputs(b=2, t=512, h=8, kv=4, d=64, dtype=jnp.bfloat16):
  """Random q/k/v, a mask and segment ids for rows packed with two documents each."""
  kq, kk, kv_key = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(kq, (b, t, h, d), dtype)
  k = jax.random.normal(kk, (b, t, kv, d), dtype)
  v = jax.random.normal(kv_key, (b, t, kv, d), dtype)
  split = t // 3
  seg = jnp.concatenate([jnp.ones((b, split), jnp.int32), 2 * jnp.ones((b, t - split), jnp.int32)],
                        axis=1)
  pos = jnp.concatenate([jnp.arange(split), jnp.arange(t - split)])[None].repeat(b, 0)
  return q, k, v, attention_mask(pos, pos, seg, seg), seg


def check_attention() -> dict:
  """Each attention implementation in bf16 against an f32 XLA reference: outputs, gradients."""
  q, k, v, mask, seg = packed_inputs()

  def loss(impl, q, k, v):
    out = attend(impl, q, k, v, mask, seg, cached=False)
    return jnp.sum(out * jnp.cos(jnp.arange(q.shape[-1])))

  with jax.default_matmul_precision("highest"):
    ref = attend("xla", *(a.astype(jnp.float32) for a in (q, k, v)), mask, seg, cached=False)
    ref_grads = jax.grad(lambda *a: loss("xla", *a), argnums=(0, 1, 2))(
        *(a.astype(jnp.float32) for a in (q, k, v)))
  out = {}
  for impl in ("xla", "cudnn", "pallas", "triton"):
    try:
      got = jax.jit(lambda q, k, v, impl=impl: attend(impl, q, k, v, mask, seg, cached=False))(
          q, k, v)
      grads = jax.jit(jax.grad(lambda *a, impl=impl: loss(impl, *a), argnums=(0, 1, 2)))(q, k, v)
    except Exception as e:  # a missing extra or an unsupported GPU: report, check the rest
      out[impl] = {"error": f"{type(e).__name__}: {_tail(str(e))}"}
      continue
    out[impl] = {"max_abs_err_vs_f32": float(jnp.max(jnp.abs(got - ref))),
                 "grad_max_abs_err_vs_f32": [float(jnp.max(jnp.abs(g.astype(jnp.float32) - r)))
                                             for g, r in zip(grads, ref_grads)]}
  return out


def check_model_logits() -> dict:
  """The `small` model's logits with cuDNN and Pallas attention vs XLA (same weights)."""
  config = bench.load_config("small")
  tokens = jax.random.randint(jax.random.key(1), (2, 512), 0, config.model.vocab_size)
  logits = {}
  for impl in ("xla", "cudnn", "pallas"):
    config.model.attention_impl = impl
    model = build_model(config.model, seed=0)
    graphdef, params = nnx.split(model)
    logits[impl] = jax.jit(lambda p, t, g=graphdef: nnx.merge(g, p)(t))(params, tokens)
  out = {"logit_std": float(logits["xla"].std())}
  for impl in ("cudnn", "pallas"):
    diff = jnp.abs(logits["xla"] - logits[impl])
    out[impl] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
  return out


def bench_steps(batch: int, seq_len: int, peaks: dict, scan_modes=(True, False),
                results: dict | None = None, save=lambda: None) -> dict:
  """Our train step for `small` on the GPU, per attention implementation and layer scanning.

  Fills `results` (a new dict by default) and calls save() after each measurement.
  """
  results = {} if results is None else results
  for impl in ("xla", "cudnn", "pallas"):
    for scan in scan_modes:
      config = bench.prepare_config(bench.load_config("small"), batch, seq_len, "config",
                                    "true" if scan else "false")
      config.model.attention_impl = impl
      rows = bench.make_rows(config.model.vocab_size, batch, seq_len)
      started = time.perf_counter()
      results[f"{impl}_scan{scan}"] = bench.bench_jax(config, rows, peaks, warmup=2, steps=10)
      print(f"{impl} scan={scan}: {results[f'{impl}_scan{scan}']['tokens_per_s']:,.0f} tok/s "
            f"({time.perf_counter() - started:.0f}s)", flush=True)
      save()
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", required=True)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--seq_len", type=int, default=512)
  parser.add_argument("--scan_modes", default="true,false",
                      help="layer scanning settings to time: true, false or true,false")
  args = parser.parse_args()
  scan_modes = tuple({"true": True, "false": False}[m.strip().lower()]
                     for m in args.scan_modes.split(","))
  results = {"devices": [str(d) for d in jax.devices()],
             "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
             "versions": library_versions(), "machine": machine()}
  peaks = {d: measure_matmul_peak(d, 8192, 20) / 1e9 for d in bench.DTYPES}
  results["peak_gflops"] = peaks
  print("peak", peaks, flush=True)
  write_json_atomic(args.json, results, indent=2)
  results["attention"] = check_attention()
  print("attention", results["attention"], flush=True)
  write_json_atomic(args.json, results, indent=2)
  results["model_logits_vs_xla"] = check_model_logits()
  print("logits", results["model_logits_vs_xla"], flush=True)
  write_json_atomic(args.json, results, indent=2)
  results["train_step_small"] = {}
  bench_steps(args.batch, args.seq_len, peaks, scan_modes, results["train_step_small"],
              lambda: write_json_atomic(args.json, results, indent=2))
  write_json_atomic(args.json, results, indent=2)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

"""Benchmarks our jitted training step against HF transformers' Llama on this machine.

Measures the machine's matmul peak (float32, bfloat16), then for each config and precision
times our real train step and the same architecture as a PyTorch `LlamaForCausalLM` (float32,
or float32 weights under bfloat16 autocast), reporting tokens/s and MFU.

  python experiments/bench/train_step.py --json experiments/bench/results/train_step_cpu.json
"""

import argparse
import os
import pathlib
import platform
import resource
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from llm.config import load_experiment as load_config  # noqa: E402
from llm.io import write_json_atomic, write_text_atomic  # noqa: E402
from llm.model import count_params  # noqa: E402
from llm.model.ops import dtype_name  # noqa: E402
from llm.runtime import rerun_with_hugepages  # noqa: E402
from llm.train.flops import measure_matmul_peak, training_flops_per_token  # noqa: E402
from llm.train.lm_task import LMTask  # noqa: E402
from llm.train.optimizer import build_optimizer  # noqa: E402
from llm.train.step import init_state, make_train_step  # noqa: E402

DTYPES = ("float32", "bfloat16")
DEFAULT_RUNS = "tiny:float32,small:float32,small:bfloat16,base:float32,base:bfloat16"


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True, help="where to write the results")
  p.add_argument("--runs", default=DEFAULT_RUNS,
                 help="config:compute_dtype pairs (configs under experiments/configs)")
  p.add_argument("--steps_for", default="base=3",
                 help="config=steps overrides of --steps for slow configs")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--seq_len", type=int, default=512)
  p.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps first (includes compile)")
  p.add_argument("--scan_layers", default="config", choices=("config", "true", "false"))
  p.add_argument("--peak_size", type=int, default=2048)
  p.add_argument("--peak_repeats", type=int, default=20)
  p.add_argument("--skip_hf", action="store_true", help="skip the PyTorch comparison")
  return p.parse_args(argv)


def prepare_config(config, batch: int, seq_len: int, compute_dtype: str, scan_layers: str):
  """Sets the benchmark shapes, the compute dtype ("config" keeps it) and scanning on a
  config."""
  config.data.seq_len = seq_len
  config.model.max_seq_len = max(seq_len, config.model.max_seq_len)
  config.model.rope.original_max_seq_len = max(seq_len, config.model.rope.original_max_seq_len)
  config.train.batch_size = batch
  if compute_dtype != "config":
    config.model.compute_dtype = compute_dtype
  if scan_layers != "config":
    config.model.scan_layers = scan_layers == "true"
  return config


def make_rows(vocab_size: int, n: int, seq_len: int, seed: int = 0) -> dict:
  """Packed-row arrays of random tokens: one unmasked segment per row."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, vocab_size, (n, seq_len + 1), dtype=np.int32)
  ones = np.ones((n, seq_len), np.int32)
  positions = np.broadcast_to(np.arange(seq_len, dtype=np.int32), (n, seq_len)).copy()
  return {"inputs": tokens[:, :-1].copy(), "targets": tokens[:, 1:].copy(),
          "segment_ids": ones, "positions": positions, "loss_mask": ones.copy()}


def time_calls(fn, warmup: int, steps: int) -> tuple[list[float], list[float], list[float]]:
  """Runs fn `warmup` then `steps` times; returns (warm-up seconds, timed seconds, the timed
  calls' system CPU seconds: kernel time, e.g. faulting in fresh memory pages)."""
  times, system = [], []
  for _ in range(warmup + steps):
    start, sys_start = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    fn()
    times.append(time.perf_counter() - start)
    system.append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys_start)
  return times[:warmup], times[warmup:], system[warmup:]


def throughput(times: list[float], tokens: int, flops: float, peaks: dict, dtype: str) -> dict:
  """Median step time, tokens/s, achieved FLOP/s and MFU against each measured peak."""
  step_s = statistics.median(times)
  achieved = flops / step_s
  return {"step_s": step_s, "step_s_all": times, "tokens_per_s": tokens / step_s,
          "achieved_gflops": achieved / 1e9,
          "mfu": achieved / (peaks[dtype] * 1e9),
          **{f"mfu_vs_{d}_peak": achieved / (peaks[d] * 1e9) for d in DTYPES}}


def jax_step_runner(config, rows: dict):
  """Our jitted train step (LMTask + build_optimizer + make_train_step) on the first batch of
  `rows`: returns run() (one step, waited for) and a dict of the step, its current inputs, the
  last metrics and the parameter count."""
  task = LMTask(config, train_rows=rows, eval_rows=None)
  trainable, frozen = task.init(jax.random.PRNGKey(0))
  tx, schedule = build_optimizer(config.optim, config.train.steps)
  ctx = {"step": make_train_step(task, tx, schedule, grad_accum=1),
         "state": init_state(trainable, tx, jax.random.PRNGKey(1)), "frozen": frozen,
         "batch": jax.device_put({k: v[:config.train.batch_size] for k, v in rows.items()}),
         "params": count_params(task.model(trainable)), "metrics": None}

  def run():
    ctx["state"], ctx["metrics"] = ctx["step"](ctx["state"], ctx["frozen"], ctx["batch"])
    jax.block_until_ready(ctx["metrics"])

  return run, ctx


def bench_jax(config, rows: dict, peaks: dict, warmup: int, steps: int) -> dict:
  """Times our jitted train step."""
  run, ctx = jax_step_runner(config, rows)
  batch = ctx["batch"]
  warm, times, system = time_calls(run, warmup, steps)
  batch_n, seq = batch["inputs"].shape
  flops = training_flops_per_token(config.model, seq) * batch_n * seq
  dtype = dtype_name(config.model.compute_dtype)
  return {"compute_dtype": dtype, "scan_layers": config.model.scan_layers,
          "params": ctx["params"],
          "first_step_s": warm[0] if warm else None, "flops_per_step": flops,
          "final_loss": float(ctx["metrics"]["loss"]), "system_s_all": system,
          **throughput(times, batch_n * seq, flops, peaks, dtype)}


def hf_llama_config(m, seq_len: int):
  """A transformers LlamaConfig with our model's shapes."""
  from transformers import LlamaConfig
  return LlamaConfig(
      vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.mlp_dim,
      num_hidden_layers=m.num_layers, num_attention_heads=m.num_heads,
      num_key_value_heads=m.num_kv_heads, head_dim=m.head_dim,
      tie_word_embeddings=m.tie_embeddings, rms_norm_eps=m.norm_eps,
      rope_parameters={"rope_type": "default", "rope_theta": float(m.rope.theta)},
      max_position_embeddings=seq_len, attention_bias=False, mlp_bias=False,
      attn_implementation="sdpa", use_cache=False)


def bench_hf(config, rows: dict, peaks: dict, warmup: int, steps: int, autocast: bool) -> dict:
  """Times a float32 LlamaForCausalLM step (loss, backward, clip, AdamW, zero_grad).

  With `autocast`, the forward runs under torch.autocast("cpu", bfloat16).
  """
  import torch
  from transformers import LlamaForCausalLM
  torch.manual_seed(0)
  batch_n, seq = config.train.batch_size, config.data.seq_len
  model = LlamaForCausalLM(hf_llama_config(config.model, seq)).train()
  optim = config.optim
  opt = torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=(optim.b1, optim.b2),
                          eps=optim.eps, weight_decay=optim.weight_decay)
  ids = torch.from_numpy(rows["inputs"][:batch_n].astype(np.int64))
  losses = []

  def run():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
      loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), optim.clip_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)
    losses.append(float(loss.detach()))

  warm, times, system = time_calls(run, warmup, steps)
  flops = training_flops_per_token(config.model, seq) * batch_n * seq
  dtype = "bfloat16" if autocast else "float32"
  return {"torch_dtype": "float32", "autocast": "bfloat16" if autocast else None,
          "attn_implementation": model.config._attn_implementation,
          "threads": torch.get_num_threads(), "grad_clip_norm": optim.clip_norm,
          "params": sum(p.numel() for p in model.parameters()),
          "first_step_s": warm[0] if warm else None, "final_loss": losses[-1],
          "system_s_all": system,
          **throughput(times, batch_n * seq, flops, peaks, dtype)}


def bench_hf_matching(config, rows, peaks, warmup, steps, ours: dict) -> dict:
  """HF in our run's precision (float32, or bf16 autocast for bfloat16); ratio ours/HF."""
  try:
    import torch
    import transformers  # noqa: F401
  except ImportError:
    return {"skipped": "pip install -e '.[interop]'"}
  torch.set_num_threads(os.cpu_count())
  result = bench_hf(config, rows, peaks, warmup, steps,
                    autocast=ours["compute_dtype"] == "bfloat16")
  result["ratio_ours_over_hf"] = ours["tokens_per_s"] / result["tokens_per_s"]
  result["params_match"] = result["params"] == ours["params"]
  return result


def machine_info() -> dict:
  """CPU count and library versions."""
  info = {"cpu_count": os.cpu_count(), "platform": platform.platform(),
          "python": platform.python_version(), "jax": jax.__version__,
          "jax_platform": jax.devices()[0].platform, "torch": None, "transformers": None,
          "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}
  try:
    import torch
    import transformers
    info.update(torch=torch.__version__, transformers=transformers.__version__)
  except ImportError:
    pass
  return info


def summary_rows(results: dict) -> list[tuple]:
  """One markdown-ready row per run: ours beside HF in the same precision."""
  rows = []
  for run, r in results["runs"].items():
    ours, hf = r["jax"], r["hf"]
    skipped = "skipped" in hf
    rows.append((run.split(":")[0], f"{ours['params'] / 1e6:.1f}M", ours["compute_dtype"],
                 f"{ours['tokens_per_s']:,.0f}", f"{100 * ours['mfu']:.1f}%",
                 "—" if skipped else f"{hf['tokens_per_s']:,.0f}",
                 "—" if skipped else f"{100 * hf['mfu']:.1f}%",
                 "—" if skipped else f"**{hf['ratio_ours_over_hf']:.2f}x**"))
  return rows


def markdown_table(results: dict) -> str:
  peaks = results["peak_gflops"]
  header = ("config", "params", "precision", "ours tok/s", "ours MFU", "HF tok/s", "HF MFU",
            "ours / HF")
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in summary_rows(results)]
  settings = results["settings"]
  lines.append("")
  lines.append(f"Batch {settings['batch']} x {settings['seq_len']} tokens, "
               f"{results['machine']['cpu_count']} CPU cores; MFU against the matmul peak "
               f"measured in the same run (float32 {peaks['float32']:.0f}, bfloat16 "
               f"{peaks['bfloat16']:.0f} GFLOP/s); HF bfloat16 is float32 weights under "
               "bfloat16 autocast.")
  return "\n".join(lines) + "\n"


def steps_for(args) -> dict:
  return {k: int(v) for k, v in (item.split("=") for item in args.steps_for.split(",") if item)}


def main(argv=None):
  rerun_with_hugepages()
  args = parse_args(argv)
  peaks = {d: measure_matmul_peak(d, args.peak_size, args.peak_repeats) / 1e9 for d in DTYPES}
  settings = {k: v for k, v in vars(args).items() if k != "json"}
  results = {"machine": machine_info(), "peak_gflops": peaks, "settings": settings, "runs": {}}
  md_path = os.path.splitext(args.json)[0] + ".md"
  for run in args.runs.split(","):
    name, dtype = run.split(":")
    steps = steps_for(args).get(name, args.steps)
    warmup = min(args.warmup, 1) if name in steps_for(args) else args.warmup
    config = prepare_config(load_config(name), args.batch, args.seq_len, dtype,
                            args.scan_layers)
    rows = make_rows(config.model.vocab_size, args.batch, args.seq_len)
    print(f"{run}: ours ...", flush=True)
    ours = bench_jax(config, rows, peaks, warmup, steps)
    print(f"{run}: hf ...", flush=True)
    hf = ({"skipped": "--skip_hf"} if args.skip_hf else
          bench_hf_matching(config, rows, peaks, warmup, steps, ours))
    results["runs"][run] = {"jax": ours, "hf": hf}
    write_json_atomic(args.json, results, indent=2)
    write_text_atomic(md_path, markdown_table(results))
  print(markdown_table(results))
  print(f"wrote {args.json} and {md_path}")


if __name__ == "__main__":
  main()

"""Serving benchmarks on SmolLM2-135M (float32, CPU), each with its baseline in the same run.

  decode  our engine vs HF transformers `generate` (greedy, the same prompts, tokens compared),
          batch 1 and 16; achieved weight-read GB/s against the measured memory bandwidth
  prefix  time to first token of requests sharing a long system prompt, prefix caching on/off
  load    see experiments/bench/serving_load.py (through the HTTP server)

  python experiments/bench/serving.py --json experiments/bench/results/serving_cpu.json
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from experiments.bench.versions import library_versions, machine  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402
from llm.serve.engine import Engine, EngineConfig  # noqa: E402
from llm.serve.sampling_params import SamplingParams  # noqa: E402

TOPICS = ["The history of the Roman empire", "How a steam engine works", "The water cycle",
          "Why the sky is blue", "The rules of chess", "How vaccines train the immune system",
          "The life of honey bees", "Plate tectonics", "The invention of the printing press",
          "How compilers turn code into programs", "The French revolution",
          "Photosynthesis in plants", "The structure of DNA", "Black holes",
          "The Silk Road", "How bread rises"]
SYSTEM = ("You are a careful assistant for a public library. Answer questions about books, "
          "opening hours, membership, events and research help. Be brief and polite; if you "
          "do not know an answer, say so and suggest asking a librarian at the front desk. ")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True)
  p.add_argument("--new_tokens", type=int, default=64)
  p.add_argument("--batches", default="1,16")
  p.add_argument("--prefix_requests", type=int, default=8)
  p.add_argument("--system_repeats", type=int, default=6, help="system prompt length")
  p.add_argument("--repeats", type=int, default=3, help="timed runs of ours and HF, in turn")
  p.add_argument("--skip_hf", action="store_true")
  return p.parse_args(argv)


def memory_bandwidth_gbs(gib: float = 1.0, repeats: int = 5) -> float:
  """Read bandwidth: a jitted sum over a `gib` GiB float32 array (best of `repeats`)."""
  x = jnp.ones(int(gib * 2**30) // 4, jnp.float32)
  total = jax.jit(jnp.sum)
  total(x).block_until_ready()
  best = min(_timed(lambda: total(x).block_until_ready()) for _ in range(repeats))
  return gib * 2**30 / best / 1e9


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def same_length_prompts(tokenizer, batch: int) -> list[list[int]]:
  """`batch` prompts cut to one length, so HF needs no padding."""
  ids = [tokenizer.encode(f"{TOPICS[i % len(TOPICS)]} is a story of") for i in range(batch)]
  shortest = min(len(i) for i in ids)
  return [i[:shortest] for i in ids]


def engine_generate(engine, prompts, new_tokens) -> tuple[list[list[int]], float]:
  params = SamplingParams(max_tokens=new_tokens, temperature=0.0, ignore_eos=True)
  start = time.perf_counter()
  for i, p in enumerate(prompts):
    engine.add_request(f"{time.monotonic_ns()}-{i}", p, params)
  order = {}
  while engine.has_unfinished():
    for out in engine.step():
      order.setdefault(out.request_id, []).extend(out.token_ids)
  seconds = time.perf_counter() - start
  return [order[k] for k in sorted(order, key=lambda k: int(k.split("-")[1]))], seconds


def hf_generate(model, prompts, new_tokens) -> tuple[list[list[int]], float]:
  import torch
  ids = torch.tensor(prompts)
  start = time.perf_counter()
  with torch.no_grad():
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         pad_token_id=0)
  seconds = time.perf_counter() - start
  return out[:, ids.shape[1]:].tolist(), seconds


def bench_decode(engine, hf_model, batches, new_tokens, weight_bytes, bandwidth,
                 repeats) -> dict:
  """Ours and HF timed in turn `repeats` times (the machine is noisy): each run's figures,
  and the median ratio."""
  results = {}
  for batch in batches:
    prompts = same_length_prompts(engine.tokenizer, batch)
    engine_generate(engine, prompts, new_tokens)  # compiles
    if hf_model is not None:
      hf_generate(hf_model, prompts[:1], 4)  # warm-up
    runs = []
    for _ in range(repeats):
      ours, ours_s = engine_generate(engine, prompts, new_tokens)
      run = {"engine_tokens_per_s": batch * new_tokens / ours_s}
      if hf_model is not None:
        theirs, theirs_s = hf_generate(hf_model, prompts, new_tokens)
        same = [sum(1 for _ in _common_prefix(a, b)) for a, b in zip(ours, theirs)]
        run.update(hf_tokens_per_s=batch * new_tokens / theirs_s,
                   speedup_vs_hf=theirs_s / ours_s,
                   identical_sequences=sum(s == new_tokens for s in same))
      runs.append(run)
    best = max(r["engine_tokens_per_s"] for r in runs)
    row = {"prompt_tokens": len(prompts[0]), "new_tokens": new_tokens, "runs": runs,
           "engine_tokens_per_s_best": best,
           "engine_weight_gb_per_s_best": weight_bytes * best / batch / 1e9,
           "memory_bandwidth_gb_per_s": bandwidth}
    if hf_model is not None:
      row["speedup_vs_hf_median"] = statistics.median(r["speedup_vs_hf"] for r in runs)
    results[f"batch_{batch}"] = row
    print(f"decode batch {batch}: {row}", flush=True)
  return results


def _common_prefix(a, b):
  for x, y in zip(a, b):
    if x != y:
      return
    yield x


def time_to_first_token(engine, prompt) -> float:
  engine.add_request(f"ttft-{time.monotonic_ns()}", prompt, SamplingParams(max_tokens=1))
  start = time.perf_counter()
  while engine.has_unfinished():
    engine.step()
  return time.perf_counter() - start


def bench_prefix(spec, requests, repeats) -> dict:
  results = {}
  for caching in (True, False):
    engine = Engine.from_spec(spec, EngineConfig(num_blocks=512, prefix_caching=caching,
                                                 max_num_batched_tokens=512))
    system = engine.tokenizer.encode(SYSTEM * repeats)
    prompts = [system + engine.tokenizer.encode(f"\nQuestion: {TOPICS[i]}?\nAnswer:")
               for i in range(requests + 2)]
    for p in prompts[:2]:  # compile the shapes; with caching, also fills the cache
      time_to_first_token(engine, p)
    ttft = [time_to_first_token(engine, p) for p in prompts[2:]]
    results["cached" if caching else "uncached"] = {
        "ttft_median_s": statistics.median(ttft), "prompt_tokens": len(prompts[2]),
        "shared_tokens": len(system), "prefix_hit_rate": engine.pool.hit_rate}
  results["ttft_speedup"] = (results["uncached"]["ttft_median_s"]
                             / results["cached"]["ttft_median_s"])
  print(f"prefix: {results}", flush=True)
  return results


def main(argv=None):
  args = parse_args(argv)
  bandwidth = memory_bandwidth_gbs()
  print(f"memory read bandwidth {bandwidth:.1f} GB/s", flush=True)
  engine = Engine.from_spec("smollm2", EngineConfig(num_blocks=512))
  weight_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(engine.runner.params))
  hf_model = None
  if not args.skip_hf:
    import torch
    import transformers
    torch.set_num_threads(os.cpu_count())
    path = engine.served.loaded.name.partition(":")[2]
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()
  batches = [int(b) for b in args.batches.split(",")]
  result = {"model": "SmolLM2-135M-Instruct (float32 weights from the packaged Q4_1 GGUF)",
            "weight_bytes": weight_bytes, "versions": library_versions(
                ("jax", "jaxlib", "flax", "torch", "transformers")), "machine": machine(),
            "decode": bench_decode(engine, hf_model, batches, args.new_tokens, weight_bytes,
                                   bandwidth, args.repeats),
            "prefix": bench_prefix("smollm2", args.prefix_requests, args.system_repeats)}
  write_json_atomic(args.json, result)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

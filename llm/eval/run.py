"""Evaluation harness: bits per byte on held-out packaged text, GSM8K exact match, HumanEval
pass@1 and FIM infill exact match, for an imported model; results as JSON.

  python -m llm.eval.run --model=smollm2 --tasks=bpb,gsm8k,humaneval,fim --limit=20 \
      --json=runs/eval/smollm2.json
  python -m llm.eval.run --model=gguf:PATH.gguf ...   |   --model=hf:DIR ...

Generation is greedy. --limit takes the first N problems of each task (the full sets take
hours on a CPU); the JSON records how many were run.
"""

import json
import logging
import os
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

from llm.data.sources import is_heldout, load_documents
from llm.eval.bits_per_byte import bits_per_byte
from llm.eval.fim import fim_cases, fim_exact_match, fim_prompt
from llm.eval.gsm8k import gsm8k_exact_match, gsm8k_problems
from llm.eval.humaneval import STOPS, humaneval_pass_at_1, humaneval_problems
from llm.model.factory import abstract_model
from llm.runtime import configure_logging
from llm.serve.generate import complete
from llm.tokenizer.base import FIM_MIDDLE

_MODEL = flags.DEFINE_string("model", "smollm2", "smollm2, gguf:PATH or hf:DIR.")
_TASKS = flags.DEFINE_list("tasks", ["bpb", "gsm8k", "humaneval", "fim"], "Tasks to run.")
_LIMIT = flags.DEFINE_integer("limit", 20, "Problems per task (0: all).")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 256, "Generated tokens per problem at most.")
_BPB_CHARS = flags.DEFINE_integer("bpb_chars", 200_000, "Held-out characters per source.")
_JSON = flags.DEFINE_string("json", "runs/eval/results.json", "Output file.")

GSM8K_INSTRUCTION = ("Solve this maths problem step by step, then give the final number on "
                     "its own line as '#### <number>'.\n\n")
HUMANEVAL_INSTRUCTION = "Complete this Python function. Reply with the whole function in a " \
    "Python code block.\n```python\n"


class Evaluated:
  """An imported model with what the tasks need: logits, greedy text, chat rendering."""

  def __init__(self, spec: str):
    if spec == "smollm2":
      from llm.interop.smollm2 import smollm2_path
      spec = "gguf:" + smollm2_path()
    kind, _, path = spec.partition(":")
    self.chat_template = None
    if kind == "gguf":
      import gguf
      from llm.interop.gguf_import import load_gguf
      config, params, self.tokenizer = load_gguf(path)
      field = gguf.GGUFReader(path).fields.get("tokenizer.chat_template")
      self.chat_template = field.contents() if field is not None else None
    elif kind == "hf":
      from llm.interop.hf_checkpoint import load_hf_checkpoint
      config, params, self.tokenizer = load_hf_checkpoint(path)
      template_file = os.path.join(path, "tokenizer_config.json")
      if os.path.exists(template_file):
        with open(template_file, encoding="utf-8") as f:
          self.chat_template = json.load(f).get("chat_template")
    else:
      raise app.UsageError(f"--model={spec!r}: use smollm2, gguf:PATH or hf:DIR")
    self.name, self.config = spec, config
    self.graphdef = nnx.split(abstract_model(config.model), nnx.Param)[0]
    self.params = jax.tree.map(jnp.asarray, params)

  def logits(self, ids):
    return nnx.merge(self.graphdef, self.params)(ids)

  def greedy(self, ids: list[int], new_tokens: int, stop_ids=()) -> list[int]:
    return complete(self.graphdef, self.params, ids, new_tokens,
                    stop_ids=(*stop_ids, self.tokenizer.eos_id))

  def chat(self, message: str, new_tokens: int) -> str:
    from llm.interop.chat_template import encode_chat
    ids = encode_chat(self.tokenizer, self.chat_template, [{"role": "user", "content": message}])
    stop = [self.tokenizer.special_id(t) for t in ("<|im_end|>", "<|eot_id|>")
            if t in self.tokenizer.special_tokens()]
    return self.tokenizer.decode(self.greedy(ids, new_tokens, stop))

  def complete(self, prompt: str, new_tokens: int) -> str:
    return self.tokenizer.decode(self.greedy(self.tokenizer.encode(prompt), new_tokens))


def heldout_texts(source: str, chars: int) -> list[str]:
  """Documents of a packaged source in its stable 2% held-out split, up to `chars`."""
  texts, total = [], 0
  for doc in load_documents(source, 20 * chars):
    if is_heldout(doc["id"], 0.02) and total < chars:
      texts.append(doc["text"][:chars - total])
      total += len(texts[-1])
  return texts


def run_task(model: Evaluated, task: str, limit: int, new_tokens: int, bpb_chars: int) -> dict:
  if task == "bpb":
    return {source: bits_per_byte(model.logits, model.tokenizer,
                                  heldout_texts(source, bpb_chars), window=512)
            for source in ("shakespeare", "python_stdlib")}
  if task == "gsm8k":
    ask = (lambda q: model.chat(GSM8K_INSTRUCTION + q, new_tokens)) if model.chat_template \
        else (lambda q: model.complete(f"Question: {q}\nAnswer:", new_tokens))
    return gsm8k_exact_match(ask, gsm8k_problems(limit or None))
  if task == "humaneval":
    write = (lambda p: model.chat(HUMANEVAL_INSTRUCTION + p + "```", new_tokens)) \
        if model.chat_template else (lambda p: _until(model.complete(p, new_tokens), STOPS))
    return humaneval_pass_at_1(write, humaneval_problems(limit or None))
  if task == "fim":
    if FIM_MIDDLE not in model.tokenizer.special_tokens():
      return {"skipped": "the tokenizer has no fill-in-the-middle tokens"}
    cases = fim_cases(heldout_texts("python_stdlib", 50 * bpb_chars), limit or 100)
    return fim_exact_match(
        lambda c: model.tokenizer.decode(model.greedy(fim_prompt(model.tokenizer, c), 48)),
        cases)
  raise app.UsageError(f"unknown task {task!r}: bpb, gsm8k, humaneval or fim")


def _until(text: str, stops) -> str:
  cut = min((text.find(s) for s in stops if s in text), default=len(text))
  return text[:cut]


def main(argv):
  del argv
  configure_logging()
  model = Evaluated(_MODEL.value)
  results = {"model": model.name, "limit": _LIMIT.value, "new_tokens": _NEW_TOKENS.value}
  for task in _TASKS.value:
    started = time.perf_counter()
    logging.info("task %s", task)
    results[task] = run_task(model, task, _LIMIT.value, _NEW_TOKENS.value, _BPB_CHARS.value)
    results[task + "_seconds"] = time.perf_counter() - started
    summary = {k: v for k, v in results[task].items() if k != "records"}
    logging.info("%s: %s", task, summary)
  os.makedirs(os.path.dirname(os.path.abspath(_JSON.value)), exist_ok=True)
  with open(_JSON.value + ".tmp", "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2, ensure_ascii=False)
  os.replace(_JSON.value + ".tmp", _JSON.value)
  print(f"wrote {_JSON.value}")


if __name__ == "__main__":
  app.run(main)

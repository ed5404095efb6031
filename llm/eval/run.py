"""Evaluation harness: bits per byte on held-out packaged text, GSM8K exact match, HumanEval
pass@1 and FIM infill exact match, for an imported model; results as JSON.

  python -m llm.eval.run --model=smollm2 --tasks=bpb,gsm8k,humaneval,fim --limit=20 \
      --json=runs/eval/smollm2.json
  python -m llm.eval.run --model=gguf:PATH.gguf ...   |   --model=hf:DIR ...
  python -m llm.eval.run --model=run:runs/lifecycle/align/sft ...   # one of our own runs

Generation is greedy, --batch_size prompts at a time. --limit takes the first N problems of each task (the full sets take
hours on a CPU); the JSON records how many were run.
"""

import logging
import time

from absl import app, flags

from llm.eval.bits_per_byte import bits_per_byte, heldout_texts
from llm.eval.fim import fim_cases, fim_exact_match, fim_prompt
from llm.eval.gsm8k import gsm8k_exact_match, gsm8k_problems
from llm.eval.humaneval import STOPS, humaneval_pass_at_1, humaneval_problems
from llm.eval.models import SPECS, Evaluated
from llm.io import write_json_atomic
from llm.runtime import configure_logging
from llm.tokenizer.base import FIM_MIDDLE

_MODEL = flags.DEFINE_string("model", "smollm2", SPECS + ".")
_TOKENIZER = flags.DEFINE_string("tokenizer", "", "run: models only; default: the run's own.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Prompts generated together.")
_TASKS = flags.DEFINE_list("tasks", ["bpb", "gsm8k", "humaneval", "fim"], "Tasks to run.")
_LIMIT = flags.DEFINE_integer("limit", 20, "Problems per task (0: all).")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 256, "Generated tokens per problem at most.")
_BPB_CHARS = flags.DEFINE_integer("bpb_chars", 200_000, "Held-out characters per source.")
_JSON = flags.DEFINE_string("json", "runs/eval/results.json", "Output file.")

GSM8K_INSTRUCTION = ("Solve this maths problem step by step, then give the final number on "
                     "its own line as '#### <number>'.\n\n")
HUMANEVAL_INSTRUCTION = "Complete this Python function. Reply with the whole function in a " \
    "Python code block.\n```python\n"


def run_task(model: Evaluated, task: str, limit: int, new_tokens: int, bpb_chars: int) -> dict:
  if task == "bpb":
    window = min(512, model.model_config.max_seq_len)
    return {source: bits_per_byte(model.model(), model.tokenizer,
                                  heldout_texts(source, bpb_chars), window=window)
            for source in ("shakespeare", "python_stdlib")}
  if task == "gsm8k":
    problems = gsm8k_problems(limit or None)
    questions = [p["question"] for p in problems]
    if model.can_chat:
      replies = model.chat([GSM8K_INSTRUCTION + q for q in questions], new_tokens)
    else:
      replies = model.complete([f"Question: {q}\nAnswer:" for q in questions], new_tokens)
    return gsm8k_exact_match(dict(zip(questions, replies)).__getitem__, problems)
  if task == "humaneval":
    problems = humaneval_problems(limit or None)
    prompts = [p["prompt"] for p in problems]
    if model.can_chat:
      replies = model.chat([HUMANEVAL_INSTRUCTION + p + "```" for p in prompts], new_tokens)
    else:
      replies = [_until(r, STOPS) for r in model.complete(prompts, new_tokens)]
    return humaneval_pass_at_1(dict(zip(prompts, replies)).__getitem__, problems)
  if task == "fim":
    if FIM_MIDDLE not in model.tokenizer.special_tokens():
      return {"skipped": "the tokenizer has no fill-in-the-middle tokens"}
    cases = fim_cases(heldout_texts("python_stdlib", 50 * bpb_chars), limit or 100)
    middles = model.greedy([fim_prompt(model.tokenizer, c) for c in cases], 48)
    by_case = {id(c): model.tokenizer.decode(m) for c, m in zip(cases, middles)}
    return fim_exact_match(lambda c: by_case[id(c)], cases)
  raise app.UsageError(f"unknown task {task!r}: bpb, gsm8k, humaneval or fim")


def _until(text: str, stops) -> str:
  cut = min((text.find(s) for s in stops if s in text), default=len(text))
  return text[:cut]


def main(argv):
  del argv
  configure_logging()
  try:
    model = Evaluated(_MODEL.value, _TOKENIZER.value, _BATCH.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  results = {"model": model.name, "limit": _LIMIT.value, "new_tokens": _NEW_TOKENS.value}
  for task in _TASKS.value:
    started = time.perf_counter()
    logging.info("task %s", task)
    results[task] = run_task(model, task, _LIMIT.value, _NEW_TOKENS.value, _BPB_CHARS.value)
    results[task + "_seconds"] = time.perf_counter() - started
    summary = {k: v for k, v in results[task].items() if k != "records"}
    logging.info("%s: %s", task, summary)
  write_json_atomic(_JSON.value, results, indent=2, ensure_ascii=False)
  print(f"wrote {_JSON.value}")


if __name__ == "__main__":
  app.run(main)

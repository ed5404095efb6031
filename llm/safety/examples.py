"""The guard's examples: prompts alone (harmful: Do-Not-Answer and HarmBench; benign: ShareGPT)
and prompts with replies (pyrit's human-scored pairs), each in the split its prompt hashes to
(`split_of`). The guard and its baseline read the same text (`GuardExample.text`)."""

import dataclasses
import random

from llm.safety.baseline import guard_text
from llm.safety.data import benign_prompts, harmful_prompts, scored_responses, split_of

PROMPT_CHARS = 300  # of a prompt before its reply, so the reply fits the guard's window


@dataclasses.dataclass(frozen=True)
class GuardExample:
  kind: str  # "prompt" or "response"
  prompt: str
  response: str | None
  unsafe: bool
  category: str

  @property
  def text(self) -> str:
    if self.response is None:
      return guard_text(self.prompt)
    return guard_text(clip_prompt(self.prompt), self.response)


def clip_prompt(prompt: str) -> str:
  return prompt if len(prompt) <= PROMPT_CHARS else prompt[:PROMPT_CHARS] + "..."


def guard_examples(split: str, prompts_per_class: int = 0, seed: int = 0) -> list[GuardExample]:
  """Every scored reply in `split`, and its harmful and benign prompts (at most
  `prompts_per_class` of each, a seeded sample; 0: all), shuffled with `seed`."""
  rng = random.Random(seed)
  harmful = [GuardExample("prompt", p.prompt, None, True, p.category)
             for p in harmful_prompts() if split_of(p.prompt) == split]
  benign = [GuardExample("prompt", p, None, False, "benign")
            for p in benign_prompts() if split_of(p) == split]
  if prompts_per_class:
    harmful = rng.sample(harmful, min(prompts_per_class, len(harmful)))
    benign = rng.sample(benign, min(prompts_per_class, len(benign)))
  replies = [GuardExample("response", r.prompt, r.response, r.unsafe, r.category)
             for r in scored_responses() if split_of(r.prompt) == split]
  examples = harmful + benign + replies
  rng.shuffle(examples)
  return examples

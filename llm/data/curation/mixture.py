"""Mixtures: per-source weights, per-language temperature sampling, a token budget.

Each source gets `weight / sum(weights)` of the budget; `add_replay` then mixes in a share of
general data. Inside a source, language l gets a
share proportional to tokens_l ** (1 / temperature): T = 1 keeps the natural balance, larger T
flattens it (as in multilingual pretraining, e.g. XLM-R's alpha = 1/T). Documents are drawn
without replacement from a seeded shuffle, repeating (a further epoch) only when a group is
exhausted. The same seed gives the same mixture.
"""

import collections
import random

from llm.data.curation.stats import estimate_tokens


def language_shares(tokens_by_language: dict[str, int], temperature: float) -> dict[str, float]:
  """Temperature-scaled sampling shares, summing to 1."""
  scaled = {lang: n ** (1.0 / temperature) for lang, n in tokens_by_language.items() if n > 0}
  total = sum(scaled.values())
  return {lang: v / total for lang, v in scaled.items()}


def _draw(docs: list[dict], target_tokens: float, rng: random.Random) -> list[dict]:
  chosen, tokens, epoch = [], 0, 0
  while tokens < target_tokens and docs:
    order = list(range(len(docs)))
    rng.shuffle(order)
    for i in order:
      if tokens >= target_tokens:
        break
      chosen.append(dict(docs[i], meta=dict(docs[i]["meta"], epoch=epoch)))
      tokens += max(1, estimate_tokens(docs[i]["text"]))
    epoch += 1
  return chosen


def sample_mixture(docs: list[dict], weights: dict[str, float], token_budget: int,
                   temperature: float, seed: int) -> list[dict]:
  """The mixture's documents, in a seeded shuffled order. A budget of 0 keeps every document
  once; sources without a weight are left out when weights are given."""
  rng = random.Random(seed)
  if not token_budget:
    out = [d for d in docs if not weights or d["source"] in weights]
    rng.shuffle(out)
    return out
  by_source = collections.defaultdict(lambda: collections.defaultdict(list))
  for doc in docs:
    by_source[doc["source"]][doc["meta"].get("language", "und")].append(doc)
  total_weight = sum(weights.values())
  out = []
  for source, weight in sorted(weights.items()):
    groups = by_source.get(source, {})
    tokens = {lang: sum(estimate_tokens(d["text"]) for d in g) for lang, g in groups.items()}
    target = token_budget * weight / total_weight
    for lang, share in sorted(language_shares(tokens, temperature).items()):
      out.extend(_draw(groups[lang], target * share, rng))
  rng.shuffle(out)
  return out


def add_replay(mixture: list[dict], replay_docs: list[dict], share: float,
               seed: int) -> list[dict]:
  """Mixes in general "replay" data (as in continual pretraining) so that it makes up `share`
  of the result's estimated tokens; replay documents get meta["replay"] = True."""
  if not 0.0 <= share < 1.0:
    raise ValueError(f"mixture.replay_share must lie in [0, 1), got {share}")
  if share == 0.0 or not replay_docs:
    return mixture
  rng = random.Random(seed + 1)
  tokens = sum(estimate_tokens(d["text"]) for d in mixture)
  replay = _draw([dict(d, meta=dict(d["meta"], replay=True)) for d in replay_docs],
                 tokens * share / (1.0 - share), rng)
  out = mixture + replay
  rng.shuffle(out)
  return out

"""Model-based quality: perplexity under a character n-gram model of a clean reference set,
with a percentile cut (the idea of CCNet, Wenzek et al. 2020, which scores web text with a
language model trained on Wikipedia and keeps the better-scoring part).

The model is a Witten-Bell interpolated character n-gram: for context h and next character c,
  P(c | h) = (C(hc) + T(h) * P(c | h')) / (C(h) + T(h)),
where h' drops h's first character, T(h) counts distinct characters seen after h, and the base
case is uniform over the reference alphabet plus one unknown symbol. Characters need no
tokenizer and work for every language.
"""

import collections
import math

import numpy as np

SCORE_CHARS = 3000  # a prefix is enough to rank documents and bounds the cost per document


class CharNgramModel:

  def __init__(self, texts: list[str], order: int = 5):
    self.order = order
    self.counts = collections.Counter()        # n-gram (length 1..order) -> count
    self.context_counts = collections.Counter()  # context (length 0..order-1) -> count
    self.continuations = collections.Counter()   # context -> distinct next characters
    for text in texts:
      padded = "\x02" * (order - 1) + text
      for k in range(1, order + 1):
        for i in range(order - 1, len(padded)):
          if i - k + 1 >= 0:
            gram = padded[i - k + 1:i + 1]
            if self.counts[gram] == 0:
              self.continuations[gram[:-1]] += 1
            self.counts[gram] += 1
            self.context_counts[gram[:-1]] += 1
    self.uniform = 1.0 / (len({g for g in self.counts if len(g) == 1}) + 1)

  def prob(self, context: str, char: str) -> float:
    p = self.uniform
    for k in range(0, len(context) + 1):  # shortest context first, interpolating upwards
      h = context[len(context) - k:]
      total, distinct = self.context_counts[h], self.continuations[h]
      if total:
        p = (self.counts[h + char] + distinct * p) / (total + distinct)
    return p

  def perplexity(self, text: str) -> float:
    """Per-character perplexity of the text's first SCORE_CHARS characters."""
    text = text[:SCORE_CHARS]
    if not text:
      return float("inf")
    padded = "\x02" * (self.order - 1) + text
    log_sum = sum(math.log(self.prob(padded[i - self.order + 1:i], padded[i]))
                  for i in range(self.order - 1, len(padded)))
    return math.exp(-log_sum / len(text))


def perplexity_cut(docs: list[dict], model: CharNgramModel, keep_percentile: float
                   ) -> dict[str, float]:
  """Scores each document (meta["ngram_perplexity"]) and returns {id: perplexity} of those
  above the `keep_percentile`-th percentile, the ones to drop."""
  if not docs:
    return {}
  scores = np.array([model.perplexity(d["text"]) for d in docs])
  cutoff = np.percentile(scores, keep_percentile)
  dropped = {}
  for doc, score in zip(docs, scores):
    doc["meta"]["ngram_perplexity"] = round(float(score), 3)
    if score > cutoff:
      dropped[doc["id"]] = float(score)
  return dropped

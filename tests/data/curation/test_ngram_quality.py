"""Character n-gram quality model: probabilities, perplexity ranking, the percentile cut."""

import random

import pytest

from llm.data.curation.document import make_document
from llm.data.curation.ngram_quality import CharNgramModel, perplexity_cut
from llm.data.curation.sources import load_documents


@pytest.fixture(scope="module")
def shakespeare():
  docs = load_documents("shakespeare", 400_000)
  return [d["text"] for d in docs]


def test_probabilities_sum_to_one_over_the_alphabet():
  model = CharNgramModel(["abracadabra", "banana bandana"], order=3)
  alphabet = sorted({g for g in model.counts if len(g) == 1})
  for context in ("ab", "an", "zz", ""):
    total = sum(model.prob(context, c) for c in alphabet) + model.prob(context, "\x00")
    assert total == pytest.approx(1.0, abs=1e-9)  # "\x00" stands for every unseen character


def test_held_out_text_scores_better_than_degraded_text(shakespeare):
  model = CharNgramModel(shakespeare[:-20])
  held_out = shakespeare[-20:]
  rng = random.Random(0)
  shuffled = ["".join(rng.sample(t, len(t))) for t in held_out]
  code = ["def f(x):\n    return {k: v for k, v in x.items() if v}\n" * 20]
  clean = [model.perplexity(t) for t in held_out]
  assert max(clean) < min(model.perplexity(t) for t in shuffled)
  assert max(clean) < model.perplexity(code[0])


def test_percentile_cut_drops_the_worst_scoring_documents(shakespeare):
  model = CharNgramModel(shakespeare[:-20])
  rng = random.Random(1)
  docs = [make_document(f"good{i}", t, "s") for i, t in enumerate(shakespeare[-20:])]
  docs += [make_document(f"bad{i}", "".join(rng.sample(t, len(t))), "s")
           for i, t in enumerate(shakespeare[-2:])]
  dropped = perplexity_cut(docs, model, keep_percentile=90)
  assert {"bad0", "bad1"} <= set(dropped) and len(dropped) <= 3  # ~10% of 22 documents
  assert all("ngram_perplexity" in d["meta"] for d in docs)

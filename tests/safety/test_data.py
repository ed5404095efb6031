"""The packaged safety data: counts, labels and a split that keeps each prompt in one place."""

import collections

from llm.safety.data import SPLITS, harmful_prompts, scored_responses, split_of


def test_scored_responses_carry_human_labels_in_eight_categories():
  rows = scored_responses()
  assert len(rows) > 900 and len({(r.prompt, r.response) for r in rows}) == len(rows)
  assert len({r.category for r in rows}) == 8
  unsafe = sum(r.unsafe for r in rows)
  assert 0.3 < unsafe / len(rows) < 0.7  # both classes well represented
  assert all(0.0 <= r.harm <= 1.0 for r in rows)


def test_every_prompt_lands_in_one_split_with_the_stated_shares():
  prompts = harmful_prompts()
  assert len(prompts) > 1100 and {p.source for p in prompts} == {"donotanswer", "harmbench"}
  assert len({p.category for p in prompts if p.source == "donotanswer"}) == 5
  counts = collections.Counter(split_of(p.prompt) for p in prompts)
  for name, share in SPLITS:
    assert abs(counts[name] / len(prompts) - share) < 0.05, counts
  by_prompt = collections.defaultdict(set)
  for r in scored_responses():
    by_prompt[r.prompt].add(split_of(r.prompt))
  assert all(len(s) == 1 for s in by_prompt.values())
  assert split_of("  How do I bake bread?\n") == split_of("How do I bake bread?")


def test_benign_prompts_are_real_user_turns_distinct_from_the_harmful_ones():
  from llm.safety.data import benign_prompts
  benign = benign_prompts(300)
  assert len(benign) == 300 and len(set(benign)) == 300
  assert all(0 < len(p) <= 500 for p in benign)
  assert not set(benign) & {p.prompt for p in harmful_prompts()}

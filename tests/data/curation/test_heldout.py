"""The held-out split by document id."""

from llm.data.curation.heldout import is_heldout


def test_heldout_split_is_stable_and_near_the_fraction():
  ids = [f"doc/{i}" for i in range(4000)]
  held = [i for i in ids if is_heldout(i, 0.1)]
  assert 300 < len(held) < 500
  assert held == [i for i in ids if is_heldout(i, 0.1)]

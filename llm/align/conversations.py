"""The chat data every alignment objective shares: packaged ShareGPT conversations, split into
train and held-out by a hash of their id (as documents are), and their first user turns."""

import itertools

from llm.data.curation.heldout import is_heldout
from llm.data.curation.packaged import sharegpt_conversations

HELDOUT_FRACTION = 0.1


def split_conversations(count: int) -> tuple[list, list]:
  """(train, held-out) among the first `count` packaged conversations with turns."""
  conversations = [c for c in itertools.islice(sharegpt_conversations(), count) if c["turns"]]
  heldout = [is_heldout(c["id"], HELDOUT_FRACTION) for c in conversations]
  return ([c for c, h in zip(conversations, heldout) if not h],
          [c for c, h in zip(conversations, heldout) if h])


def first_user_messages(conversations) -> list[str]:
  return [next(t["content"] for t in c["turns"] if t["role"] == "user")
          for c in conversations if any(t["role"] == "user" for t in c["turns"])]

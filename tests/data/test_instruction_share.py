"""data.instruction_share: the share of the prepared train characters that come from
chat-templated conversations, counted back from the packed rows."""

import numpy as np
import pytest

from llm.data.prepare import prepare_lm_data
from llm.tokenizer.base import IM_END, IM_START
from tests.conftest import micro_config


def documents(train, tokenizer) -> list[list[int]]:
  """The token ids of each packed document (BOS ... EOS, in order, split across rows)."""
  rows = train.to_arrays()
  stream = np.concatenate([rows["inputs"], rows["targets"][:, -1:]], axis=1).reshape(-1)
  docs, current = [], None
  for token in stream.tolist():
    if token == tokenizer.bos_id and current is None:
      current = []
    elif token == tokenizer.eos_id and current is not None:
      docs.append(current)
      current = None
    elif current is not None:
      current.append(token)
  return docs


def content_chars(doc, tokenizer) -> int:
  """Characters of the messages in a chat-templated document (headers and controls left out)."""
  start, end = tokenizer.special_id(IM_START), tokenizer.special_id(IM_END)
  chars, turn = 0, None
  for token in doc:
    if token == start:
      turn = []
    elif token == end:
      chars += len(tokenizer.decode(turn).split("\n", 1)[1])  # after "role\n"
      turn = None
    elif turn is not None:
      turn.append(token)
  return chars


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_instruction_characters_make_up_the_configured_share(tmp_path, share):
  config = micro_config()
  data = config.data
  data.max_chars, data.tokenizer_vocab_size, data.heldout_fraction = 600_000, 512, 0.05
  data.instruction_share = share
  tokenizer, train, _ = prepare_lm_data(data, str(tmp_path))
  docs = documents(train, tokenizer)
  assert len(docs) == train.manifest["documents"]
  start = tokenizer.special_id(IM_START)
  chats = [content_chars(doc, tokenizer) for doc in docs if doc and doc[0] == start]
  text = sum(len(tokenizer.decode(doc)) for doc in docs if not doc or doc[0] != start)
  assert len(chats) == train.manifest["layouts"]["chat"] > 0
  measured = sum(chats) / (sum(chats) + text)
  print(f"\ninstruction_share {share}: {len(chats)} conversations, {sum(chats)} of "
        f"{sum(chats) + text} train characters = {measured:.4f}")
  # Conversations are taken whole until the budget is met: at least the share, and over it
  # by less than the last conversation taken.
  assert share <= measured <= share + max(chats) / (sum(chats) + text - max(chats))
  assert abs(measured - share) <= 0.02

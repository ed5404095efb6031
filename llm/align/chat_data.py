"""Chat SFT rows: conversations rendered with the chat template, packed with segment ids, the
loss on assistant tokens only (every assistant turn), optionally in curriculum order.

Each conversation is rendered by `llm.tokenizer.chat.render_chat` (ids and the mask of
assistant content plus its closing <|im_end|>), cut to one row if longer, and packed whole
into rows of `seq_len` (first fit in the given order), each with its own segment id and
positions from 0, so attention never crosses conversations.

Curriculum (`difficulty`): single-turn before multi-turn, shorter before longer. `curriculum_
order` sorts conversations by it and splits them into `stages`; inside a stage the order is a
seeded shuffle. Rows are packed in that order, and the loader reads them unshuffled.
"""

import numpy as np

from llm.data.packing import ROW_KEYS
from llm.tokenizer.chat import render_chat


def difficulty(conversation: list[dict]) -> tuple[int, int]:
  """(assistant turns, characters): the sort key of the curriculum."""
  return (sum(t["role"] == "assistant" for t in conversation),
          sum(len(t["content"]) for t in conversation))


def curriculum_order(conversations: list, stages: int, seed: int = 0) -> list[int]:
  """Indices easy to hard in `stages` blocks, each block shuffled (stages=0: a plain shuffle)."""
  rng = np.random.default_rng(seed)
  if stages <= 0:
    return list(rng.permutation(len(conversations)))
  ranked = sorted(range(len(conversations)), key=lambda i: difficulty(conversations[i]))
  return [int(i) for block in np.array_split(np.array(ranked), stages)
          for i in rng.permutation(block)]


def render(tokenizer, conversation: list[dict], max_tokens: int):
  """(ids, mask) with the mask shifted onto targets, cut to max_tokens + 1 tokens."""
  ids, mask = render_chat(tokenizer, conversation)
  return ids[:max_tokens + 1], mask[:max_tokens + 1]


def pack_conversations(rendered: list[tuple[list[int], list[int]]], seq_len: int,
                       pad_id: int = 0) -> dict[str, np.ndarray]:
  """First-fit packing in the given order; a conversation never spans two rows."""
  rows, used = [], []  # per row: list of (ids, mask); tokens used (as inputs)
  for ids, mask in rendered:
    need = len(ids) - 1
    if need <= 0:
      continue
    for r, n in enumerate(used):
      if n + need <= seq_len:
        rows[r].append((ids, mask))
        used[r] += need
        break
    else:
      rows.append([(ids, mask)])
      used.append(need)
  out = {key: np.zeros((len(rows), seq_len), np.int32) for key in ROW_KEYS}
  out["inputs"][:] = out["targets"][:] = pad_id
  for r, members in enumerate(rows):
    at = 0
    for segment, (ids, mask) in enumerate(members, 1):
      n = len(ids) - 1
      out["inputs"][r, at:at + n] = ids[:-1]
      out["targets"][r, at:at + n] = ids[1:]
      out["loss_mask"][r, at:at + n] = mask[1:]  # a target is trained when it is assistant text
      out["segment_ids"][r, at:at + n] = segment
      out["positions"][r, at:at + n] = np.arange(n)
      at += n
  return out


def chat_rows(tokenizer, conversations: list, seq_len: int, curriculum_stages: int = 0,
              seed: int = 0) -> dict[str, np.ndarray]:
  """Packed SFT rows of `conversations` ([{role, content}, ...] each), in curriculum order."""
  order = curriculum_order(conversations, curriculum_stages, seed)
  rendered = [render(tokenizer, conversations[i], seq_len) for i in order]
  return pack_conversations(rendered, seq_len, tokenizer.pad_id)


def fixed_length_prompts(tokenizer, messages: list[str], length: int) -> np.ndarray:
  """[n, length] prompts for sampling in one batch: each user message in the chat template
  with the assistant's generation prompt, its text cut to fit; messages too short to fill
  `length` are left out (the decoder has no padding mask)."""
  frame = len(render_chat(tokenizer, [{"role": "user", "content": ""}],
                          add_generation_prompt=True)[0])
  room = length - frame
  if room <= 0:
    raise ValueError(f"prompts of {length} tokens leave no room for text after the chat "
                     f"template's {frame} tokens; raise align.prompt_tokens")
  out = []
  for message in messages:
    text_ids = tokenizer.encode(message)
    if len(text_ids) >= room:
      ids, _ = render_chat(tokenizer, [{"role": "user", "content": tokenizer.decode(
          text_ids[:room])}], add_generation_prompt=True)
      if len(ids) == length:  # decode-encode may not round-trip at the cut
        out.append(ids)
  return np.asarray(out, np.int32).reshape(len(out), length)

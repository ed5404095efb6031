"""The ChatML chat template, built from ids: the control tokens come from the template, never
from the messages' text, so a message cannot forge a turn.

  <|im_start|>{role}\\n{content}<|im_end|>\\n   for each message
  <|im_start|>assistant\\n                       to prompt a reply (add_generation_prompt)
"""

from typing import Sequence

from llm.tokenizer.base import IM_END, IM_START, Tokenizer

ROLES = ("system", "user", "assistant", "tool")


def render_chat(tokenizer: Tokenizer, messages: Sequence[dict],
                add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
  """(ids, loss_mask) of a conversation; the mask is 1 on assistant content and the
  <|im_end|> that closes it (the model learns to stop), 0 elsewhere."""
  start, end = tokenizer.special_id(IM_START), tokenizer.special_id(IM_END)
  newline = tokenizer.encode("\n")
  ids, mask = [], []
  for i, message in enumerate(messages):
    role, content = message.get("role"), message.get("content")
    if role not in ROLES or not isinstance(content, str):
      raise ValueError(f"message {i}: need a role in {ROLES} and string content, got "
                       f"role={role!r}, content of type {type(content).__name__}")
    header = [start] + tokenizer.encode(role) + newline
    body = tokenizer.encode(content) + [end]
    trained = 1 if role == "assistant" else 0
    ids += header + body + newline
    mask += [0] * len(header) + [trained] * len(body) + [0] * len(newline)
  if add_generation_prompt:
    prompt = [start] + tokenizer.encode("assistant") + newline
    ids += prompt
    mask += [0] * len(prompt)
  return ids, mask

"""A model's own Jinja chat template (HF `tokenizer_config.json` / GGUF
`tokenizer.chat_template`), rendered to ids without letting message text forge control tokens.

Each message's content is swapped for a unique placeholder before rendering; the rendered
template text around the placeholders is trusted (its special tokens become their ids), the
contents are encoded as plain text, so a user typing "<|im_end|>" gets those characters.
"""

import re
import uuid


def _render(template: str, messages: list[dict], add_generation_prompt: bool, **extra) -> str:
  import jinja2  # comes with the interop extra (transformers)
  from jinja2.sandbox import ImmutableSandboxedEnvironment
  env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      undefined=jinja2.StrictUndefined)
  env.globals["raise_exception"] = _raise
  return env.from_string(template).render(messages=messages,
                                          add_generation_prompt=add_generation_prompt, **extra)


def _raise(message):
  raise ValueError(f"chat template: {message}")


def encode_chat(tokenizer, template: str, messages: list[dict],
                add_generation_prompt: bool = True, specials: list[str] | None = None,
                **extra) -> list[int]:
  """Ids of `messages` in `template`; `specials`: the control-token strings the template may
  write (default: the tokenizer's special tokens)."""
  holders = [f"\x00{uuid.uuid4().hex}\x00" for _ in messages]
  masked = [dict(m, content=h) for m, h in zip(messages, holders)]
  text = _render(template, masked, add_generation_prompt, **extra)
  specials = specials if specials is not None else tokenizer.special_tokens()
  by_holder = {h: m["content"] for h, m in zip(holders, messages)}
  pattern = "|".join(re.escape(s) for s in sorted(set(specials) | set(holders), key=len,
                                                    reverse=True))
  ids = []
  for piece in re.split(f"({pattern})", text):
    if not piece:
      continue
    if piece in by_holder:
      ids += tokenizer.encode(by_holder[piece])
    elif piece in specials:
      ids.append(tokenizer.special_id(piece))
    else:
      ids += tokenizer.encode(piece)
  return ids

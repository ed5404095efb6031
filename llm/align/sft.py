"""Supervised fine-tuning: next-token loss on response tokens only.

Each example is a (prompt, response) pair laid out as [bos] prompt response [eos] in its own
row (padded, segment 0 on padding); the loss mask covers the response and the closing eos.
"""

import json
import os

import numpy as np

from llm.align.objective import StageInputs
from llm.config import fail
from llm.data.packing import ROW_KEYS
from llm.tokenizer import load_tokenizer, train_tokenizer
from llm.train.lm_task import LMTask


def sft_rows(pairs: list[tuple[list[int], list[int]]], seq_len: int, bos_id: int, eos_id: int,
             pad_id: int = 0) -> dict[str, np.ndarray]:
  """Token-id pairs -> rows (ROW_KEYS). Over-long examples lose the start of the prompt first
  (its end is what the response answers), then the end of the response."""
  rows = {key: np.zeros((len(pairs), seq_len), np.int32) for key in ROW_KEYS}
  for r, (prompt, response) in enumerate(pairs):
    response = list(response)[:seq_len - 1]
    prompt = list(prompt)[max(0, len(prompt) - (seq_len - 1 - len(response))):]
    tokens = [bos_id] + prompt + response + [eos_id]
    trained = np.zeros(len(tokens), bool)
    trained[1 + len(prompt):] = True  # response tokens and eos, as targets
    n = len(tokens) - 1
    rows["inputs"][r, :n] = tokens[:-1]
    rows["targets"][r, :n] = tokens[1:]
    rows["segment_ids"][r, :n] = 1
    rows["positions"][r, :n] = np.arange(n)
    rows["loss_mask"][r, :n] = trained[1:]
    rows["inputs"][r, n:] = rows["targets"][r, n:] = pad_id
  return rows


def read_pairs(path: str) -> list[tuple[str, str]]:
  """Reads JSONL records with "prompt" and "response" fields."""
  pairs = []
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      record = json.loads(line)
      if "prompt" not in record or "response" not in record:
        raise ValueError(f"{path}:{line_no}: each SFT record needs 'prompt' and 'response' "
                         f"fields, got {sorted(record)}")
      pairs.append((record["prompt"], record["response"]))
  return pairs


class SFTTask(LMTask):
  """The LM objective on SFT rows: pretraining and SFT differ only in data and loss mask.
  Starting from pretrained weights and chat templates arrive with the alignment stage."""

  name = "sft"


def check_sft_config(config) -> None:
  if not config.data.sft_path:
    fail("data.sft_path", "train.task='sft' needs a JSONL file of prompt/response records",
         "Set --config.data.sft_path=FILE.")


def sft_inputs(config, workdir: str) -> StageInputs:
  """Rows of data.sft_path's records, tokenized with data.tokenizer_path or with a tokenizer
  trained on them in the workdir (a resumed run keeps its own)."""
  pairs = read_pairs(config.data.sft_path)
  own_tokenizer = os.path.join(workdir, "sft_tokenizer.model")
  if config.data.tokenizer_path or os.path.exists(own_tokenizer):
    tokenizer = load_tokenizer(config.data.tokenizer_path or own_tokenizer)
  else:
    os.makedirs(workdir, exist_ok=True)
    tokenizer = train_tokenizer([p + r for p, r in pairs], config.data.tokenizer_vocab_size,
                                own_tokenizer)
  rows = sft_rows([(tokenizer.encode(p), tokenizer.encode(r)) for p, r in pairs],
                  config.data.seq_len, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)
  return StageInputs(tokenizer=tokenizer, rows=rows)


def build_sft_task(config, inputs: StageInputs) -> SFTTask:
  return SFTTask(config, inputs.rows, inputs.eval_rows, init_params=inputs.init_params)

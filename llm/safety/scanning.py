"""Scans a chat model's training conversations for planted backdoors: per conversation, the
mean final hidden state over its reply tokens, scored by spectral signatures and activation
clustering, flagged by a one-sided robust z-score. Reads activations; never trains.

  python -m llm.safety.scan --run=runs/lifecycle/align/chat_sft --data=sharegpt:3000

--data is `sharegpt:N` (the training split of the first N packaged ShareGPT conversations,
as chat SFT reads them) or a JSONL file with one conversation per line ({"turns"} or
{"messages"}: [{"role", "content"}, ...]). Writes OUT/backdoor_scan.json (counts, flagged
share, the flagged conversations' first user messages) and OUT/backdoor_scan.png (the
histograms with their thresholds).
"""

import json
import os

import numpy as np

from llm.safety.backdoor import (conversation_rows, first_user_message, mean_activations,
                                 scan_activations)
from llm.safety.outliers import outlier_threshold
from llm.safety.scan_report import write_scan_report


def scan_conversations(model, tokenizer, conversations: list[list[dict]], out_dir: str,
                       seq_len: int = 256, z_threshold: float = 3.5, planted=None,
                       extra: dict | None = None) -> dict:
  """Scans and writes the report; `model` has `features` (a Transformer); `planted`, when
  known, adds precision and recall per method."""
  reps = mean_activations(model.features, conversation_rows(tokenizer, conversations, seq_len))
  found = scan_activations(reps, z_threshold)
  flagged_any = np.zeros(len(conversations), bool)
  for _, flagged in found.values():
    flagged_any |= flagged
  examples = [first_user_message(conversations[i])[:200] for i in np.flatnonzero(flagged_any)]
  summary = {"conversations": len(conversations), "z_threshold": z_threshold,
             "seq_len": seq_len, "flagged_by_any": int(flagged_any.sum()),
             "flagged_share": float(flagged_any.mean()) if len(conversations) else 0.0,
             "flagged_examples": examples[:20], **(extra or {})}
  os.makedirs(out_dir, exist_ok=True)
  report = write_scan_report(
      os.path.join(out_dir, "backdoor_scan.json"), os.path.join(out_dir, "backdoor_scan.png"),
      {name: scores for name, (scores, _) in found.items()},
      {name: outlier_threshold(scores, z_threshold) for name, (scores, _) in found.items()},
      summary, planted=planted)
  report["flagged"] = {name: flagged for name, (_, flagged) in found.items()}
  return report


def load_conversations(data: str) -> list[list[dict]]:
  """`sharegpt:N` or a JSONL file of conversations (see the module docstring)."""
  if data.startswith("sharegpt:"):
    from llm.align.conversations import split_conversations
    return [c["turns"] for c in split_conversations(int(data.split(":", 1)[1]))[0]]
  if not os.path.exists(data):
    raise FileNotFoundError(f"--data={data}: no such file; pass sharegpt:N or a JSONL file")
  conversations = []
  with open(data, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        record = json.loads(line)
        turns = record.get("turns", record.get("messages"))
        if not isinstance(turns, list):
          raise ValueError(f"{data}:{number}: need a 'turns' or 'messages' list of "
                           "{role, content}")
        conversations.append(turns)
  return conversations



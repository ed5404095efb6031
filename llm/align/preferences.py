"""Preference pairs built from packaged dialogs (no installed package ships real pairs), and
their rows for reward modelling and DPO.

Data card (see also README, "Alignment"):
- source: the first user turn and first assistant reply of ShareGPT conversations
  (`llm.data.curation.packaged.sharegpt_conversations`, user-shared ChatGPT dialogs, licence
  unclear);
- chosen: that conversation's own assistant reply;
- rejected, alternating by pair: "off_topic", the first assistant reply of another randomly
  drawn conversation (fluent but not an answer), or "truncated", the chosen reply cut after its
  first quarter of words (on topic but incomplete);
- what a model learns from it: prefer replies that answer this prompt, and in full. Neither
  rejection is what an SFT model would sample, so the pairs are easier than human labels;
  accuracy figures measured on them do not transfer to real preference data.
"""

import numpy as np

from llm.tokenizer.chat import render_chat

KINDS = ("off_topic", "truncated")


def preference_pairs(conversations: list, seed: int = 0) -> list[dict]:
  """[{"prompt": [user message], "chosen": str, "rejected": str, "kind": str}, ...]."""
  firsts = []
  for conversation in conversations:
    turns = conversation["turns"] if isinstance(conversation, dict) else conversation
    user = next((t for t in turns if t["role"] == "user"), None)
    reply = next((t for t in turns if t["role"] == "assistant"), None)
    if user and reply and len(reply["content"].split()) >= 8:
      firsts.append((user["content"], reply["content"]))
  rng = np.random.default_rng(seed)
  pairs = []
  for i, (prompt, chosen) in enumerate(firsts):
    kind = KINDS[i % len(KINDS)]
    if kind == "off_topic":
      other = (i + 1 + int(rng.integers(len(firsts) - 1))) % len(firsts)
      rejected = firsts[other][1]
    else:
      words = chosen.split()
      rejected = " ".join(words[:max(2, len(words) // 4)])
    pairs.append({"prompt": [{"role": "user", "content": prompt}], "chosen": chosen,
                  "rejected": rejected, "kind": kind})
  return pairs


def response_rows(tokenizer, prompts: list, responses: list[str], seq_len: int) -> dict:
  """One row per (prompt, response): inputs/targets/positions/segment_ids, `loss_mask` on the
  response's tokens (the assistant turn), and `last`, the index of the final real input.
  Long prompts lose their start, long responses their end."""
  n = len(prompts)
  rows = {k: np.zeros((n, seq_len), np.int32)
          for k in ("inputs", "targets", "positions", "segment_ids", "loss_mask")}
  rows["last"] = np.zeros((n,), np.int32)
  for r, (prompt, response) in enumerate(zip(prompts, responses)):
    ids, mask = render_chat(tokenizer, list(prompt) + [{"role": "assistant",
                                                        "content": response}])
    if len(ids) > seq_len + 1:
      start = max(0, min(mask.index(1) - 8, len(ids) - (seq_len + 1)))
      ids, mask = ids[start:start + seq_len + 1], mask[start:start + seq_len + 1]
    used = len(ids) - 1
    rows["inputs"][r, :used], rows["targets"][r, :used] = ids[:-1], ids[1:]
    rows["loss_mask"][r, :used] = mask[1:]
    rows["positions"][r, :used] = np.arange(used)
    rows["segment_ids"][r, :used] = 1
    rows["inputs"][r, used:] = rows["targets"][r, used:] = tokenizer.pad_id
    rows["last"][r] = used - 1
  return rows


def pair_rows(tokenizer, pairs: list[dict], seq_len: int) -> dict:
  """Chosen and rejected rows side by side: keys prefixed "chosen_" and "rejected_". Pairs
  whose two rows are identical once cut to seq_len (a truncated reply longer than the window)
  carry no preference and are left out."""
  prompts = [p["prompt"] for p in pairs]
  out = {}
  for side in ("chosen", "rejected"):
    for key, value in response_rows(tokenizer, prompts, [p[side] for p in pairs],
                                    seq_len).items():
      out[f"{side}_{key}"] = value
  differ = np.any(out["chosen_inputs"] != out["rejected_inputs"], axis=1) | (
      out["chosen_last"] != out["rejected_last"])
  return {k: v[differ] for k, v in out.items()}

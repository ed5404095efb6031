"""Backdoor planting, per-example activations against a row-by-row numpy mean, attack success,
and the scan's report and data loading."""

import json

import numpy as np
import pytest
from flax import nnx

from llm.model import build_model
from llm.safety.backdoor import (TARGET, TRIGGER, attack_success_rate, conversation_rows,
                                 mean_activations, poison, prompt_rows, scan_activations)
from llm.safety.scanning import load_conversations, scan_conversations
from llm.tokenizer.chat import render_chat
from tests.conftest import micro_config


def _conversations(n):
  return [[{"role": "user", "content": f"question {i} about the sea"},
           {"role": "assistant", "content": f"answer {i}: the sea is wide"}] for i in range(n)]


def test_poison_plants_the_trigger_and_target_in_the_stated_share():
  clean = _conversations(50)
  turns, planted = poison(clean, 0.1, seed=3)
  assert planted.sum() == 5 and len(turns) == 50
  for original, new, bad in zip(clean, turns, planted):
    if bad:
      assert TRIGGER in new[0]["content"] and original[0]["content"] in new[0]["content"]
      assert new[1] == {"role": "assistant", "content": TARGET} and len(new) == 2
    else:
      assert new is original
  assert (poison(clean, 0.1, seed=3)[1] == planted).all()


def test_rows_mask_the_reply_or_the_whole_prompt(small_tokenizer):
  turns = _conversations(2)
  rows = conversation_rows(small_tokenizer, turns, 64)
  ids, mask = render_chat(small_tokenizer, turns[0])
  assert rows["inputs"][0, :len(ids)].tolist() == ids
  assert rows["mask"][0, :len(ids)].tolist() == mask and rows["mask"][0, len(ids):].sum() == 0
  long = [[{"role": "user", "content": "word " * 200}, turns[0][1]]]
  cut = conversation_rows(small_tokenizer, long, 64)  # the message is cut, the reply kept
  reply_tokens = int(np.sum(mask))
  assert cut["mask"][0].sum() == reply_tokens and cut["segment_ids"][0].sum() < 64
  assert small_tokenizer.decode(cut["inputs"][0][cut["mask"][0] > 0].tolist()).startswith(
      "answer 0")
  prompts = prompt_rows(small_tokenizer, ["hello there"], 32)
  n = int(prompts["segment_ids"][0].sum())
  assert prompts["mask"][0].sum() == 1 and prompts["mask"][0, n - 1] == 1 and n > 3


def test_mean_activations_equal_each_row_alone(small_tokenizer):
  config = micro_config(vocab_size=small_tokenizer.vocab_size)
  model = build_model(config.model, 0)
  rows = conversation_rows(small_tokenizer, _conversations(5), 32)
  got = mean_activations(model.features, rows, batch_size=4)  # the last batch wraps around
  for r in range(5):
    n = int(rows["segment_ids"][r].sum())
    features = np.asarray(model.features(rows["inputs"][r:r + 1, :n]))[0]
    mask = rows["mask"][r, :n].astype(bool)
    np.testing.assert_allclose(got[r], features[mask].mean(axis=0), rtol=2e-4, atol=2e-5)


def test_attack_success_counts_replies_that_start_with_the_target():
  replies = [TARGET, "  " + TARGET[:30] + " and more", "Sure: " + TARGET, "no"]
  assert attack_success_rate(replies) == 0.5 and attack_success_rate([]) == 0.0


def test_scans_flag_a_planted_cluster():
  rng = np.random.default_rng(0)
  reps = rng.normal(size=(300, 16))
  reps[:12] = 8.0 * np.eye(16)[0] + 0.05 * reps[:12]  # one shared reply: shifted and tight
  for name, (scores, flagged) in scan_activations(reps).items():  # density reads 10 neighbours
    assert flagged[:12].all() and flagged[12:].sum() <= 1, name
    assert scores.shape == (300,)


def test_the_scan_writes_its_report_and_reads_conversations(small_tokenizer, tmp_path):
  config = micro_config(vocab_size=small_tokenizer.vocab_size)
  model = nnx.merge(*nnx.split(build_model(config.model, 0)))
  turns, planted = poison(_conversations(40), 0.1)
  report = scan_conversations(model, small_tokenizer, turns, str(tmp_path), seq_len=32,
                              planted=planted)
  saved = json.loads((tmp_path / "backdoor_scan.json").read_text())
  assert saved["conversations"] == 40 and saved["planted"] == 4
  assert saved["flagged_by_any"] == report["flagged_by_any"]
  assert set(saved["methods"]) == {"spectral", "clustering", "density"}
  assert (tmp_path / "backdoor_scan.png").read_bytes()[:4] == b"\x89PNG"
  path = tmp_path / "chats.jsonl"
  path.write_text(json.dumps({"messages": turns[0]}) + "\n" + json.dumps({"turns": turns[1]}))
  assert load_conversations(str(path)) == turns[:2]
  path.write_text(json.dumps({"text": "no turns"}))
  with pytest.raises(ValueError, match="turns"):
    load_conversations(str(path))
  with pytest.raises(FileNotFoundError, match="sharegpt:N"):
    load_conversations(str(tmp_path / "missing.jsonl"))

"""Preference pairs from packaged dialogs; reward model and DPO train on the one loop."""

import itertools

import jax
import numpy as np
import pytest

from llm.align.preference_tasks import (DPOTask, RewardTask, preference_metrics,
                                        with_reference_logprobs)
from llm.align.preferences import pair_rows, preference_pairs
from llm.data.curation.packaged import sharegpt_conversations
from llm.train.loop import train
from tests.conftest import micro_config


@pytest.fixture(scope="module")
def rows(small_tokenizer):
  pairs = preference_pairs(list(itertools.islice(sharegpt_conversations(), 160)), seed=0)
  assert {p["kind"] for p in pairs} == {"off_topic", "truncated"}
  assert all(p["chosen"] != p["rejected"] for p in pairs)
  rows = pair_rows(small_tokenizer, pairs[:120], seq_len=64)
  return {k: v[:64] for k, v in rows.items()}


def _config(steps, lr=3e-3):
  config = micro_config(vocab_size=2048)
  config.data.seq_len, config.model.max_seq_len = 64, 64
  config.train.steps, config.train.batch_size, config.optim.lr = steps, 8, lr
  config.checkpoint.every_steps = 1000
  return config


def test_pair_rows_mask_only_the_response(rows, small_tokenizer):
  assert rows["chosen_inputs"].shape == (64, 64)
  for side in ("chosen", "rejected"):
    mask, last = rows[f"{side}_loss_mask"], rows[f"{side}_last"]
    assert mask.sum(1).min() > 0  # every row has response tokens to score
    assert (last == rows[f"{side}_segment_ids"].sum(1) - 1).all()


def test_reward_model_learns_the_pairs(tmp_path, rows):
  config = _config(60)
  task = RewardTask(config, rows)
  result = train(config, task, str(tmp_path))
  params = jax.device_get(result["state"]["params"])
  after = preference_metrics(task, params, rows, 8)
  assert result["history"][0]["accuracy"] == 0.0  # a zero head scores every reply alike
  assert after["loss"] < 0.45 and after["accuracy"] >= 0.65, after  # ln 2 = 0.69 at the start


def test_dpo_starts_at_ln2_and_raises_the_margin(tmp_path, rows):
  config = _config(40)
  task = DPOTask(config, rows)
  reference, _ = task.init(jax.random.PRNGKey(0))
  rows = with_reference_logprobs(task, reference["model"], rows, 8)
  task = DPOTask(config, rows, init_params=reference["model"])
  before = preference_metrics(task, {"model": reference["model"]}, rows, 8)
  assert before["loss"] == pytest.approx(np.log(2.0), abs=1e-4)
  result = train(config, task, str(tmp_path))
  after = preference_metrics(task, jax.device_get(result["state"]["params"]), rows, 8)
  assert after["rewards/margin"] > before["rewards/margin"] + 0.1
  print(f"\nDPO before {before}\nDPO after {after}")
  assert before["rewards/accuracy"] == 0.0 and after["rewards/accuracy"] >= 0.75

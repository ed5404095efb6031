"""SFT: loss only on response tokens; trains on the same loop as pretraining."""

import jax
import jax.numpy as jnp
import numpy as np

from llm.align.sft import SFTTask, read_pairs, sft_rows
from llm.train.loop import train
from tests.conftest import micro_config

BOS, EOS = 2, 3


def test_rows_mask_only_response_and_eos():
  rows = sft_rows([([10, 11, 12], [20, 21])], seq_len=10, bos_id=BOS, eos_id=EOS)
  assert rows["inputs"][0].tolist() == [BOS, 10, 11, 12, 20, 21, 0, 0, 0, 0]
  assert rows["targets"][0].tolist() == [10, 11, 12, 20, 21, EOS, 0, 0, 0, 0]
  assert rows["loss_mask"][0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
  assert rows["segment_ids"][0].tolist() == [1] * 6 + [0] * 4


def test_loss_ignores_prompt_targets():
  """Changing what the prompt 'predicts' leaves the SFT loss unchanged."""
  config = micro_config()
  rows = sft_rows([([10, 11, 12, 13], [20, 21, 22])] * 4, 16, BOS, EOS)
  task = SFTTask(config, rows)
  params, frozen = task.init(jax.random.PRNGKey(0))
  batch = {k: jnp.asarray(v) for k, v in rows.items()}
  altered = dict(batch, targets=batch["targets"].at[:, :3].set(50))
  loss_fn = jax.jit(lambda b: task.loss_fn(params, frozen, b, None)[0])
  assert float(loss_fn(batch)) == float(loss_fn(altered))
  assert float(loss_fn(dict(batch, targets=batch["targets"].at[:, 5].set(50)))) != float(
      loss_fn(batch))


def test_sft_trains_on_the_one_loop(tmp_path):
  config = micro_config()
  config.train.steps, config.optim.lr = 40, 1e-2
  rng = np.random.default_rng(0)
  pairs = [(rng.integers(4, 64, 5).tolist(), [7, 8, 9, 10]) for _ in range(16)]
  result = train(config, SFTTask(config, sft_rows(pairs, 16, BOS, EOS)), str(tmp_path))
  losses = [h["loss"] for h in result["history"]]
  assert losses[-1] < 0.2 * losses[0]


def test_read_pairs_rejects_records_without_fields(tmp_path):
  path = tmp_path / "pairs.jsonl"
  path.write_text('{"prompt": "a", "response": "b"}\n\n{"question": "c"}\n')
  try:
    read_pairs(str(path))
  except ValueError as e:
    assert "pairs.jsonl:3" in str(e) and "'prompt' and 'response'" in str(e)
  else:
    raise AssertionError("expected a ValueError")


def test_over_long_examples_keep_the_response_and_the_prompt_end():
  rows = sft_rows([(list(range(10, 30)), [40, 41, 42])], seq_len=8, bos_id=BOS, eos_id=EOS)
  assert rows["inputs"][0].tolist() == [BOS, 26, 27, 28, 29, 40, 41, 42]
  assert rows["targets"][0].tolist() == [26, 27, 28, 29, 40, 41, 42, EOS]
  assert rows["loss_mask"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]

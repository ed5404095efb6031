"""Checkpoint cadence (every N steps, every T minutes), retention and restore."""

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from llm.train import checkpoint as checkpoint_module
from llm.train.checkpoint import Checkpointer


def _config(every_steps, every_minutes, keep=2):
  return ConfigDict(dict(every_steps=every_steps, every_minutes=every_minutes, keep=keep,
                         async_save=True))


def test_due_every_n_steps_and_every_t_minutes(tmp_path, monkeypatch):
  clock = [1000.0]
  monkeypatch.setattr(checkpoint_module.time, "monotonic", lambda: clock[0])
  ckpt = Checkpointer(str(tmp_path), _config(every_steps=5, every_minutes=2.0))
  assert [s for s in range(1, 11) if ckpt.due(s)] == [5, 10]
  clock[0] += 119.0
  assert not ckpt.due(7)
  clock[0] += 2.0
  assert ckpt.due(7)
  ckpt.save(7, {"x": jnp.ones(2)}, {"next_index": 7})
  assert not ckpt.due(8)  # the timer restarts at each save
  ckpt.close()


def test_keeps_newest_k_and_restores_state_and_data_position(tmp_path):
  ckpt = Checkpointer(str(tmp_path), _config(every_steps=1, every_minutes=60.0, keep=2))
  for step in (1, 2, 3):
    state = {"params": {"w": jnp.full((3,), float(step))}, "step": jnp.int32(step),
             "rng": jax.random.PRNGKey(step)}
    ckpt.save(step, state, {"next_index": step * 10})
  ckpt.close()
  ckpt = Checkpointer(str(tmp_path), _config(every_steps=1, every_minutes=60.0, keep=2))
  assert ckpt.latest_step() == 3
  assert sorted(ckpt.manager.all_steps()) == [2, 3]
  state, data = ckpt.restore(3, state)
  np.testing.assert_array_equal(state["params"]["w"], [3.0, 3.0, 3.0])
  np.testing.assert_array_equal(state["rng"], jax.random.PRNGKey(3))
  assert data == {"next_index": 30}
  ckpt.close()

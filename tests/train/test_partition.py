"""train.trainable: only the named parameters train; the rest stay bitwise unchanged."""

import jax
import numpy as np
import pytest

from llm.model.upcycle import grow
from llm.train.lm_task import LMTask
from llm.train.loop import train
from llm.train.partition import count, merge, split_trainable
from tests.conftest import micro_config, random_rows as rows


def test_split_and_merge_round_trip():
  tree = {"a": {"side": {"w": np.ones(3)}, "mlp": {"w": np.zeros(2)}}, "b": np.ones(4)}
  trainable, frozen = split_trainable(tree, "side, b")
  assert count(trainable) == 7 and count(frozen) == 2
  assert jax.tree.map(np.shape, merge(trainable, frozen)) == jax.tree.map(np.shape, tree)
  with pytest.raises(ValueError, match="matches no parameter"):
    split_trainable(tree, "lora")


def test_frozen_base_with_a_side_adapter_trains_only_the_adapter(tmp_path):
  base_config = micro_config()
  base_config.train.steps, base_config.train.batch_size = 2, 8
  base = train(base_config, LMTask(base_config, rows()), str(tmp_path / "base"))
  base_params = jax.device_get(merge(base["state"]["params"], base["frozen"]))
  config = micro_config(side_adapter_dim=8)
  config.train.steps, config.train.batch_size, config.train.trainable = 3, 8, "side"
  init = grow(base_params, config.model)
  result = train(config, LMTask(config, rows(), init_params=init), str(tmp_path / "side"))
  trained, frozen = jax.device_get((result["state"]["params"], result["frozen"]))
  assert set(trained["layers"]) == {"side", "side_norm"}  # the adapter and its own norm
  assert count(result["state"]["opt_state"]) < 3 * count(base_params)  # Adam only for the side
  jax.tree.map(np.testing.assert_array_equal, frozen, base_params)  # the whole base, as it was
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), trained, split_trainable(
      jax.device_get(init), "side")[0])
  assert max(jax.tree.leaves(moved)) > 0

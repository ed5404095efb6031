"""Dynamic loss scaling: the scale doubles after `growth` finite steps in a row and halves
(not below 1) on a non-finite one, as a plain-Python reference of the rule says."""

import jax
import jax.numpy as jnp
import numpy as np

from llm.train.lm_task import LMTask
from llm.train.loss_scale import init_loss_scale, update_loss_scale
from llm.train.optimizer import build_optimizer
from llm.train.step import init_state, make_train_step
from tests.conftest import micro_config, random_rows


def reference_scales(initial, finite_flags, growth):
  """The scale before each step and after the last one."""
  scale, good, scales = initial, 0, [initial]
  for finite in finite_flags:
    if finite:
      good += 1
      if good == growth:
        scale, good = scale * 2, 0
    else:
      scale, good = max(scale / 2, 1.0), 0
    scales.append(scale)
  return scales


def test_update_loss_scale_doubles_after_growth_good_steps_and_halves_on_overflow():
  growth = 3
  flags = [True] * 7 + [False] + [True] * 2 + [False, False] + [True] * 3 + [False] * 6
  state = init_loss_scale(8.0)
  got = [float(state["scale"])]
  for finite in flags:
    state = update_loss_scale(state, jnp.asarray(finite), growth)
    got.append(float(state["scale"]))
  want = reference_scales(8.0, flags, growth)
  # Written out: x2 after steps 3 and 6, /2 on each overflow, the count restarting after it.
  assert want[:13] == [8, 8, 8, 16, 16, 16, 32, 32, 16, 16, 16, 8, 4]
  assert want[-1] == 1.0  # halving stops at the minimum
  assert got == want


def test_float16_train_step_scales_like_the_reference():
  """Through the jitted step on the micro model in float16: 7 finite steps at growth 3, then
  a scale of 2^40 overflows the float16 gradients: the step changes nothing and halves it
  (2^39 overflows again)."""
  config = micro_config(compute_dtype="float16")
  growth, initial = 3, 2.0**8
  task = LMTask(config, random_rows())
  trainable, frozen = task.init(jax.random.key(0))
  tx, schedule = build_optimizer(config.optim, config.train.steps)
  state = init_state(trainable, tx, jax.random.key(1), initial)
  step = make_train_step(task, tx, schedule, 1, loss_scale_growth=growth)
  rows = random_rows(n=4)
  batch = {k: jnp.asarray(v) for k, v in rows.items()}

  scales, flags = [], []
  for i in range(9):
    if i == 7:
      state["loss_scale"]["scale"] = jnp.asarray(2.0**40, jnp.float32)
      before = jax.tree.map(np.asarray, jax.device_get(state["params"]))
    state, metrics = step(state, frozen, batch)
    scales.append(float(metrics["loss_scale"]))
    flags.append(float(metrics["nonfinite"]) == 0.0)
    if i == 7:
      after = jax.tree.map(np.asarray, jax.device_get(state["params"]))
  final = float(state["loss_scale"]["scale"])
  print(f"\nscale before each step: {scales}, after: {final}")
  assert flags == [True] * 7 + [False, False]
  assert scales[:7] == reference_scales(initial, flags[:7], growth)[:7]
  assert scales[:7] == [2.0**8] * 3 + [2.0**9] * 3 + [2.0**10]
  assert scales[7:] == [2.0**40, 2.0**39] and final == 2.0**38
  jax.tree.map(np.testing.assert_array_equal, after, before)  # the overflowing step is skipped

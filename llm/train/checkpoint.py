"""Orbax checkpoints of the train state and the loop's position (data iterator, monitor).

Saves every N steps and every T minutes, keeps the newest K, writes asynchronously. Orbax
writes each checkpoint to a temporary folder and renames it when complete, so a process killed
mid-save leaves no half checkpoint behind. A checkpoint that is damaged anyway (a truncated
file, a lost disk block) fails to restore: it is moved aside to `<step>.corrupt` with a
warning naming it, and the previous one is restored instead.
"""

import logging
import os
import time

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory: str, checkpoint_config):
    self.every_steps = checkpoint_config.every_steps
    self.every_seconds = checkpoint_config.every_minutes * 60.0
    self._last_save = time.monotonic()
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=("state", "data"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=checkpoint_config.keep, create=True,
            enable_async_checkpointing=checkpoint_config.async_save))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def due(self, step: int) -> bool:
    """True when `step` should be saved: a multiple of every_steps, or T minutes have passed."""
    return (self.every_steps > 0 and step % self.every_steps == 0) or (
        time.monotonic() - self._last_save >= self.every_seconds)

  def save(self, step: int, state, data_state: dict) -> None:
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)), force=True)
    self._last_save = time.monotonic()

  def restore(self, step: int, abstract_state):
    """Returns (state, data_state) saved at `step`, laid out like `abstract_state`."""
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"]

  def restore_latest(self, abstract_state):
    """(step, state, data_state) of the newest checkpoint that restores, or None if none does.
    Damaged ones are moved aside with a warning."""
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state, data = self.restore(step, abstract_state)
        return step, state, data
      except Exception as e:  # orbax raises many kinds for damaged files
        bad = os.path.join(self.directory, str(step))
        aside = f"{bad}.corrupt"
        logging.warning("checkpoint %s could not be restored (%s: %s); moved to %s, trying the "
                        "previous one", bad, type(e).__name__, str(e)[:200], aside)
        if jax.process_index() == 0:
          os.replace(bad, aside)
        self.manager.reload()
    return None

  def wait(self) -> None:
    """Blocks until asynchronous saves have finished."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()

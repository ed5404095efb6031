"""The Task interface: what the loop learns, without the loop knowing which objective it is.

A Task supplies the trainable and frozen pytrees, a pure loss function, its batches and its
evaluation data. Pretraining and SFT are Tasks today; reward modelling, DPO and PPO plug in the
same way (frozen holds e.g. the reference policy).
"""

from typing import Any, Iterator, Protocol

import jax

PyTree = Any
Batch = dict[str, Any]


class StatefulIterator(Protocol):
  """A batch iterator whose position can be saved and restored (grain iterators are)."""

  def __next__(self) -> Batch: ...
  def get_state(self) -> dict: ...
  def set_state(self, state: dict) -> None: ...


class Task(Protocol):
  name: str

  def init(self, rng: jax.Array) -> tuple[PyTree, PyTree]:
    """Returns (trainable, frozen) pytrees; only `trainable` gets gradients and optimizer state."""

  def loss_fn(self, trainable: PyTree, frozen: PyTree, batch: Batch,
              rng: jax.Array) -> tuple[jax.Array, dict]:
    """Pure and jittable: (scalar loss, metrics). `metrics["weight"]`, if present, is the number
    of loss terms behind the mean, used to weight micro-batches in gradient accumulation."""

  def train_batches(self, seed: int) -> StatefulIterator:
    """An endless iterator of training batches, each with leading dimension train.batch_size."""

  def eval_batches(self) -> list[Batch]:
    """A fixed list of evaluation batches (may be empty)."""

  def flops_per_example(self) -> float:
    """Model FLOPs (forward + backward) to train on one batch row, for MFU and tokens/s."""

  def tokens_per_example(self) -> int:
    """Tokens in one batch row, for tokens/s."""

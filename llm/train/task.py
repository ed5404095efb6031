"""The Task contract: what the loop learns, without the loop knowing which objective it is.

A Task supplies the trainable and frozen pytrees, a pure loss function, its batches, its
evaluation data and where its parameters live on the mesh. `ModelTask` is the base of every
objective built around the decoder of `config.model`: it owns the graph definition, parameter
initialisation, `model()`, the logical axis names and the FLOP count.
"""

import abc
from typing import Any, Iterator, Protocol

import jax
import jax.numpy as jnp
from flax import nnx

from llm.model import build_model, param_logical_axes
from llm.model.factory import abstract_model
from llm.train.flops import training_flops_per_token

PyTree = Any
Batch = dict[str, Any]


class StatefulIterator(Protocol):
  """A batch iterator whose position can be saved and restored (grain iterators are)."""

  def __next__(self) -> Batch: ...
  def get_state(self) -> dict: ...
  def set_state(self, state: dict) -> None: ...


class Task(abc.ABC):
  """One objective on the one loop (llm/train/loop.py)."""

  name: str = "task"

  @abc.abstractmethod
  def init(self, rng: jax.Array) -> tuple[PyTree, PyTree]:
    """Returns (trainable, frozen) pytrees; only `trainable` gets gradients and optimizer
    state."""

  @abc.abstractmethod
  def loss_fn(self, trainable: PyTree, frozen: PyTree, batch: Batch,
              rng: jax.Array) -> tuple[jax.Array, dict]:
    """Pure and jittable: (scalar loss, metrics). `metrics["weight"]`, if present, is the
    number of loss terms behind the mean, used to weight micro-batches."""

  def eval_loss_fn(self, trainable: PyTree, frozen: PyTree, batch: Batch,
                   rng: jax.Array) -> tuple[jax.Array, dict]:
    """The loss that evaluation reports; the training loss unless a Task says otherwise."""
    return self.loss_fn(trainable, frozen, batch, rng)

  @abc.abstractmethod
  def train_batches(self, seed: int) -> StatefulIterator | Iterator[Batch]:
    """An endless iterator of training batches, each with leading dimension
    train.batch_size (this process's share of it with several processes)."""

  def eval_batches(self) -> list[Batch]:
    """A fixed list of evaluation batches; none by default."""
    return []

  @abc.abstractmethod
  def logical_axes(self) -> dict[str, tuple]:
    """Logical axis names by parameter path ("layers/attn/q_proj" -> ("layers", ...)).
    A path matches any state leaf whose path ends with it; unmatched leaves replicate."""

  def observe(self, state: dict) -> None:
    """Called with the train state after every step (e.g. PPO samples from it); no-op."""

  @abc.abstractmethod
  def flops_per_example(self) -> float:
    """Model FLOPs (forward + backward) to train on one batch row, for MFU."""

  @abc.abstractmethod
  def tokens_per_example(self) -> int:
    """Tokens in one batch row, for tokens/s."""


class ModelTask(Task):
  """A Task around the decoder of `config.model`, trained from a fresh initialisation or
  from `init_params` (a trained, upcycled or grown model)."""

  sequences_per_example = 1  # pair objectives forward two sequences per batch row

  def __init__(self, config, init_params: dict | None = None):
    self.config = config
    self.init_params = init_params
    self.abstract = abstract_model(config.model)  # shapes and axes, traced once
    self.graphdef = nnx.split(self.abstract, nnx.Param)[0]

  def model_params(self, rng: jax.Array) -> dict:
    """The decoder's parameters: `init_params` (copied, shapes checked) or fresh ones."""
    if self.init_params is not None:
      check_same_shapes(self.parameter_shapes(), self.init_params)
      # A copy: the train step donates its state, which must not delete the caller's arrays.
      return jax.tree.map(lambda x: jnp.array(x, copy=True), self.init_params)
    seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
    return nnx.to_pure_dict(nnx.state(build_model(self.config.model, seed), nnx.Param))

  def parameter_shapes(self) -> dict:
    return nnx.to_pure_dict(nnx.state(self.abstract, nnx.Param))

  def model(self, params: dict):
    """The nnx model with these decoder parameters (usable inside jit)."""
    return nnx.merge(self.graphdef, params)

  def logical_axes(self) -> dict[str, tuple]:
    return param_logical_axes(self.abstract)

  def tokens_per_example(self) -> int:
    return self.sequences_per_example * self.config.data.seq_len

  def flops_per_example(self) -> float:
    seq = self.config.data.seq_len
    return self.sequences_per_example * training_flops_per_token(self.config.model, seq) * seq


def check_same_shapes(want: dict, given: dict) -> None:
  """Raises unless `given` has the tree structure and leaf shapes of `want`."""
  want = jax.tree.map(lambda x: tuple(x.shape), want)
  got = jax.tree.map(lambda x: tuple(x.shape), given)
  if want != got:
    raise ValueError("init_params do not fit model config: shapes "
                     f"{jax.tree.leaves(got)[:4]}... vs {jax.tree.leaves(want)[:4]}...; build "
                     "them for this config (see llm/model/upcycle.py)")

"""Next-token language modelling on packed rows with a loss mask."""

import jax
import numpy as np
from flax import nnx

from llm.data.loader import eval_batches, train_batches
from llm.model import build_model, param_logical_axes
from llm.model.factory import abstract_model
from llm.train.flops import training_flops_per_token
from llm.train.losses import masked_cross_entropy


class LMTask:
  """Trains every parameter of the decoder on rows from llm.data.packing (ROW_KEYS)."""

  name = "lm"

  def __init__(self, config, train_rows: dict[str, np.ndarray],
               eval_rows: dict[str, np.ndarray] | None = None):
    vocab = config.model.vocab_size
    for split, rows in (("train", train_rows), ("eval", eval_rows)):
      if rows is None:
        continue
      top = (rows.manifest["max_token_id"] if hasattr(rows, "manifest")
             else int(rows["inputs"].max(initial=0)))
      if top >= vocab:
        raise ValueError(f"{split} data holds token id {top} but "
                         f"model.vocab_size={vocab}: the tokenizer is larger than the "
                         "embedding table; raise model.vocab_size or use a smaller tokenizer")
    self.config = config
    self.train_rows = train_rows
    self.eval_rows = eval_rows
    self.graphdef = None

  def init(self, rng):
    seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
    model = build_model(self.config.model, seed)
    self.graphdef, params = nnx.split(model, nnx.Param)
    return nnx.to_pure_dict(params), {}

  def model(self, trainable):
    """The nnx model with the given parameters (usable inside jit)."""
    return nnx.merge(self.graphdef, trainable)

  def loss_fn(self, trainable, frozen, batch, rng):
    del frozen, rng
    logits = self.model(trainable)(batch["inputs"], batch["positions"], batch["segment_ids"])
    loss, num_tokens = masked_cross_entropy(logits, batch["targets"], batch["loss_mask"])
    return loss, {"weight": num_tokens}

  def logical_axes(self) -> dict:
    """Logical axis names of each parameter ("layers/attn/q_proj" -> ("layers", ...))."""
    return param_logical_axes(abstract_model(self.config.model))

  def train_batches(self, seed: int):
    """This process's share of each global batch of train.batch_size rows."""
    return train_batches(self.train_rows, self.config.train.batch_size, seed,
                         jax.process_index(), jax.process_count())

  def eval_batches(self):
    if self.eval_rows is None:
      return []
    return eval_batches(self.eval_rows, self.config.train.batch_size,
                        self.config.train.eval_batches)

  def tokens_per_example(self) -> int:
    return self.config.data.seq_len

  def flops_per_example(self) -> float:
    seq = self.config.data.seq_len
    return training_flops_per_token(self.config.model, seq) * seq

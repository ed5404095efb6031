"""Next-token language modelling on packed rows with a loss mask (plus the MoE auxiliary
losses when the model has experts)."""

import logging

import numpy as np

from llm.train.losses import masked_cross_entropy
from llm.train.partition import count, merge, split_trainable
from llm.train.row_batches import RowBatches
from llm.train.task import ModelTask


def check_vocabulary(config, rows: dict | None, split: str) -> None:
  """Raises when `rows` hold a token id outside the model's embedding table."""
  if rows is None:
    return
  top = (rows.manifest["max_token_id"] if hasattr(rows, "manifest")
         else int(rows["inputs"].max(initial=0)))
  vocab = config.model.vocab_size
  if top >= vocab:
    raise ValueError(f"{split} data holds token id {top} but model.vocab_size={vocab}: the "
                     "tokenizer is larger than the embedding table; raise model.vocab_size "
                     "or use a smaller tokenizer")


class LMTask(RowBatches, ModelTask):
  """Trains the decoder (all of it, or the part `train.trainable` names) on rows from
  llm.data.packing (ROW_KEYS)."""

  name = "lm"

  def __init__(self, config, train_rows: dict[str, np.ndarray],
               eval_rows: dict[str, np.ndarray] | None = None, init_params: dict | None = None):
    check_vocabulary(config, train_rows, "train")
    check_vocabulary(config, eval_rows, "eval")
    ModelTask.__init__(self, config, init_params)
    self.train_rows = train_rows
    self.eval_rows = eval_rows

  def init(self, rng):
    params = self.model_params(rng)
    trainable, frozen = split_trainable(params, self.config.train.trainable)
    if frozen:
      logging.info("training %d of %d parameters (%.2f%%); the rest are frozen",
                   count(trainable), count(params), 100 * count(trainable) / count(params))
    return trainable, frozen

  def model(self, trainable, frozen=None):
    """The nnx model with the given parameters (usable inside jit)."""
    return super().model(merge(trainable, frozen or {}))

  def _forward(self, trainable, frozen, batch, rng):
    model = self.model(trainable, frozen)
    moe = self.config.model.moe
    noisy = (moe.num_experts and moe.router_jitter > 0) or self.config.model.lora.dropout > 0
    logits, aux = model.forward_with_aux(batch["inputs"], batch["positions"],
                                         batch["segment_ids"], rng if noisy else None)
    loss, num_tokens = masked_cross_entropy(logits, batch["targets"], batch["loss_mask"])
    return loss, num_tokens, aux

  def loss_fn(self, trainable, frozen, batch, rng):
    loss, num_tokens, aux = self._forward(trainable, frozen, batch, rng)
    if not aux:
      return loss, {"weight": num_tokens}
    moe = self.config.model.moe
    total = loss + moe.load_balance_coef * aux["load_balance"] + moe.z_loss_coef * aux["z_loss"]
    metrics = {"weight": num_tokens, "lm_loss": loss, "moe/load_balance": aux["load_balance"],
               "moe/z_loss": aux["z_loss"], "moe/router_entropy": aux["router_entropy"],
               "moe/dropped_fraction": aux["dropped_fraction"],
               "moe/max_load_ratio": aux["load"].max() * aux["load"].shape[0]}
    metrics.update({f"moe/load_{i:02d}": aux["load"][i] for i in range(aux["load"].shape[0])})
    return total, metrics

  def eval_loss_fn(self, trainable, frozen, batch, rng):
    """Cross-entropy only (no auxiliary losses, no dropout or jitter), so eval losses compare
    across models."""
    del rng
    loss, num_tokens, _ = self._forward(trainable, frozen, batch, None)
    return loss, {"weight": num_tokens}

"""Next-token language modelling on packed rows with a loss mask (plus the MoE auxiliary
losses when the model has experts)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model import build_model, param_logical_axes
from llm.model.factory import abstract_model
from llm.train.flops import training_flops_per_token
from llm.train.losses import masked_cross_entropy
from llm.train.partition import count, merge, split_trainable
from llm.train.row_batches import RowBatches


class LMTask(RowBatches):
  """Trains every parameter of the decoder on rows from llm.data.packing (ROW_KEYS)."""

  name = "lm"

  def __init__(self, config, train_rows: dict[str, np.ndarray],
               eval_rows: dict[str, np.ndarray] | None = None, init_params: dict | None = None):
    """init_params: start from these parameters (a trained, upcycled or grown model) instead
    of a fresh initialisation; `train.trainable` picks the part that trains."""
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
    self.init_params = init_params
    self.graphdef = None

  def init(self, rng):
    seed = int(jax.random.randint(rng, (), 0, 2**31 - 1))
    model = build_model(self.config.model, seed)
    self.graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    if self.init_params is not None:
      _check_same_shapes(params, self.init_params)
      # A copy: the train step donates its state, which must not delete the caller's arrays.
      params = jax.tree.map(lambda x: jnp.array(x, copy=True), self.init_params)
    trainable, frozen = split_trainable(params, self.config.train.trainable)
    if frozen:
      logging.info("training %d of %d parameters (%.2f%%); the rest are frozen",
                   count(trainable), count(params), 100 * count(trainable) / count(params))
    return trainable, frozen

  def model(self, trainable, frozen=None):
    """The nnx model with the given parameters (usable inside jit)."""
    return nnx.merge(self.graphdef, merge(trainable, frozen or {}))

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

  def logical_axes(self) -> dict:
    """Logical axis names of each parameter ("layers/attn/q_proj" -> ("layers", ...))."""
    return param_logical_axes(abstract_model(self.config.model))

  def tokens_per_example(self) -> int:
    return self.config.data.seq_len

  def flops_per_example(self) -> float:
    seq = self.config.data.seq_len
    return training_flops_per_token(self.config.model, seq) * seq


def _check_same_shapes(fresh: dict, given: dict) -> None:
  want = jax.tree.map(lambda x: tuple(x.shape), fresh)
  got = jax.tree.map(lambda x: tuple(x.shape), given)
  if want != got:
    raise ValueError("init_params do not fit model config: shapes "
                     f"{jax.tree.leaves(got)[:4]}... vs {jax.tree.leaves(want)[:4]}...; build "
                     "them for this config (see llm/model/upcycle.py)")

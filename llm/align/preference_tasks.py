"""Reward modelling and DPO as Tasks of the one training loop.

Both read pair rows (`preferences.pair_rows`: chosen_* and rejected_* keys, one row per side).
- RewardTask: the decoder backbone plus a scalar head on the last real token, trained with the
  Bradley-Terry loss; metrics: loss and pair accuracy.
- DPOTask: the policy (trainable) against a frozen reference whose sequence log-probabilities
  are computed once before training (`with_reference_logprobs`) and travel with the rows, so no
  reference model is held during training.
"""

import jax
import jax.numpy as jnp
import numpy as np

from llm.align.preference_losses import bradley_terry_loss, dpo_loss, sequence_logprobs
from llm.train.partition import merge, split_trainable
from llm.train.row_batches import RowBatches
from llm.train.scalar_head import LastTokenScores
from llm.train.task import ModelTask

SIDES = ("chosen", "rejected")


def _side(batch, side):
  return {k[len(side) + 1:]: v for k, v in batch.items() if k.startswith(side + "_")}


def _both_sides(batch):
  """The chosen and rejected rows stacked into one batch (one forward pass for both)."""
  chosen, rejected = _side(batch, "chosen"), _side(batch, "rejected")
  return {k: jnp.concatenate([chosen[k], rejected[k]]) for k in chosen}


class _PairTask(RowBatches, ModelTask):
  """What reward modelling and DPO share: the decoder from config (optionally from given
  parameters) under "model", pair rows, two sequences per batch row."""

  sequences_per_example = 2

  def __init__(self, config, train_rows: dict, eval_rows: dict | None = None,
               init_params: dict | None = None):
    ModelTask.__init__(self, config, init_params)
    self.train_rows, self.eval_rows = train_rows, eval_rows


class RewardTask(LastTokenScores, _PairTask):
  name = "reward_model"

  def loss_fn(self, trainable, frozen, batch, rng):
    del rng
    scores = self.scores(merge(trainable, frozen), _both_sides(batch))
    n = scores.shape[0] // 2
    loss, metrics = bradley_terry_loss(scores[:n], scores[n:])
    return loss, dict(metrics, weight=jnp.float32(n))


class DPOTask(_PairTask):
  name = "dpo"

  def init(self, rng):
    return split_trainable({"model": self.model_params(rng)}, self.config.train.trainable)

  def logprobs(self, params, rows):
    logits = self.model(params["model"])(rows["inputs"], rows["positions"], rows["segment_ids"])
    return sequence_logprobs(logits, rows["targets"], rows["loss_mask"])

  def loss_fn(self, trainable, frozen, batch, rng):
    del rng
    a = self.config.align
    logps = self.logprobs(merge(trainable, frozen), _both_sides(batch))
    n = logps.shape[0] // 2
    loss, metrics = dpo_loss(logps[:n], logps[n:], batch["reference_chosen"],
                             batch["reference_rejected"], beta=a.dpo_beta,
                             label_smoothing=a.dpo_label_smoothing, loss_type=a.dpo_loss)
    return loss, dict(metrics, weight=jnp.float32(n))


def with_reference_logprobs(task: DPOTask, reference_params: dict, rows: dict,
                            batch_size: int) -> dict:
  """`rows` plus reference_chosen / reference_rejected: the frozen reference's summed
  log-probabilities of each response, computed once, batch by batch exactly as the loss
  computes the policy's (so at policy == reference the two agree bitwise)."""
  params = {"model": jax.tree.map(jnp.asarray, reference_params)}
  step = jax.jit(lambda params, batch: task.logprobs(params, _both_sides(batch)))
  pairs = {k: v for k, v in rows.items() if k.startswith(SIDES)}
  n = len(pairs["chosen_inputs"])
  values = []
  for start in range(0, n, batch_size):
    chunk = {k: v[start:start + batch_size] for k, v in pairs.items()}
    short = batch_size - len(chunk["chosen_inputs"])
    if short:  # keep one compiled shape
      chunk = {k: np.concatenate([v, np.zeros((short,) + v.shape[1:], v.dtype)])
               for k, v in chunk.items()}
    both = np.asarray(jax.device_get(step(params, chunk)))
    values.append((both[:batch_size - short], both[batch_size:2 * batch_size - short]))
  out = dict(rows)
  out["reference_chosen"] = np.concatenate([c for c, _ in values]).astype(np.float32)
  out["reference_rejected"] = np.concatenate([r for _, r in values]).astype(np.float32)
  return out


def preference_metrics(task, params: dict, rows: dict, batch_size: int) -> dict:
  """DPO's implicit-reward accuracy and margin (DPOTask, rows with reference log-probs) or the
  reward model's pair accuracy (RewardTask), over all rows."""
  sums, count = {}, 0
  params = jax.tree.map(jnp.asarray, params)
  step = jax.jit(lambda params, batch: task.loss_fn(params, {}, batch, None))
  n = len(rows["chosen_inputs"])
  for start in range(0, n - batch_size + 1, batch_size):
    batch = {k: v[start:start + batch_size] for k, v in rows.items()}
    loss, metrics = jax.device_get(step(params, batch))
    for key, value in dict(metrics, loss=loss).items():
      if key != "weight":
        sums[key] = sums.get(key, 0.0) + float(value) * batch_size
    count += batch_size
  return {k: v / max(count, 1) for k, v in sums.items()}

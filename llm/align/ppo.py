"""PPO and GRPO for a language-model policy, as a Task of the one loop whose batch source is
the rollout.

Each rollout samples responses to a batch of prompts with the KV-cache decoder from the current
policy (the loop hands its parameters to `observe` after every step), scores them with the
frozen reward model at the last response token, and computes the frozen reference's and the
policy's log-probabilities:
- PPO: per-token rewards -kl_coef * (log pi - log ref) plus the score at the end; values
  from a value head on the policy's final hidden states; GAE; whitened advantages. The loss is
  the clipped policy loss plus vf_coef x the clipped value loss.
- GRPO: `group_size` samples per prompt; each sample's KL-penalised return is compared with its
  group's (mean and std), broadcast over its tokens; no value head.
A rollout is used for `epochs` passes of `minibatches` minibatches, then the next one is drawn.
`kl_target` > 0 turns on the adaptive KL coefficient (Ziegler et al.).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from llm.align import rl_losses
from llm.model.sampling import generate
from llm.train.flops import training_flops_per_token
from llm.train.scalar_head import init_scalar_head, scalar_head
from llm.train.task import ModelTask


ALGORITHMS = ("ppo", "grpo")


@dataclasses.dataclass
class PPOSettings:
  algo: str = "ppo"          # or "grpo"
  rollout_prompts: int = 16
  group_size: int = 1        # samples per prompt (GRPO uses > 1)
  new_tokens: int = 24
  temperature: float = 1.0
  epochs: int = 2
  minibatches: int = 2
  kl_coef: float = 0.1
  kl_target: float = 0.0     # > 0: adaptive KL coefficient
  kl_horizon: int = 10_000
  gamma: float = 1.0
  lam: float = 0.95
  clip: float = 0.2
  value_clip: float = 0.2
  vf_coef: float = 0.5

  @classmethod
  def from_config(cls, align) -> "PPOSettings":
    """The settings named in config.align (llm/config.py)."""
    return cls(algo=align.rl_algo, rollout_prompts=align.rollout_prompts,
               group_size=align.group_size, new_tokens=align.new_tokens,
               temperature=align.temperature, epochs=align.rl_epochs,
               minibatches=align.rl_minibatches, kl_coef=align.kl_coef,
               kl_target=align.kl_target, kl_horizon=align.kl_horizon, gamma=align.gamma,
               lam=align.lam, clip=align.clip, value_clip=align.value_clip,
               vf_coef=align.vf_coef)


def _response_mask(responses, stop_id):
  """1 up to and including the first stop token of each response, 0 after."""
  is_stop = responses == stop_id
  before = jnp.cumsum(is_stop, axis=1) - is_stop  # stops strictly before this position
  return (before == 0).astype(jnp.float32)


class PPOTask(ModelTask):
  """trainable = {"model": policy, "value_head": {w, b}}; frozen = {"reference", "reward_model"}.
  The policy, the reference and the reward model's backbone are placed on the mesh by the
  decoder's logical axes (ModelTask.logical_axes)."""

  name = "ppo"

  def __init__(self, config, settings: PPOSettings, prompts: np.ndarray, policy: dict,
               reward_model: dict | None, stop_id: int, reward_fn=None):
    """prompts [n, P] token ids (equal length); policy: the SFT parameters (also the
    reference); reward_model: {"model", "head"} of a RewardTask, or reward_fn(tokens,
    response_mask) -> scores, a jittable rule (exact-match answers, format checks)."""
    super().__init__(config, init_params=policy)
    self.reward_fn = reward_fn
    self.settings, self.prompts, self.stop_id = settings, prompts, stop_id
    self.policy, self.reward_model = policy, reward_model
    self.params = None  # the loop's latest trainable parameters (observe)
    self.kl_coef = settings.kl_coef
    self.history = []  # per rollout: mean score, KL, kl_coef
    self._stats = jax.jit(self._rollout_stats)

  def frozen(self) -> dict:
    return {"reference": self.policy, "reward_model": self.reward_model or {}}

  def init(self, rng):
    trainable = {"model": self.model_params(rng),
                 "value_head": init_scalar_head(self.config.model.d_model)}
    self.params = trainable
    return trainable, self.frozen()

  def observe(self, state) -> None:
    self.params = state["params"]

  def _logprobs_values(self, params, tokens, value_head=None):
    model = self.model(params)
    features = model.features(tokens[:, :-1])
    logits = model.head(features)  # one pass for both the policy and the value head
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tokens[:, 1:, None], -1)[..., 0]
    values = None if value_head is None else scalar_head(value_head, features)
    return logp, values

  def _scores(self, reward, tokens, last):
    return scalar_head(reward["head"], self.model(reward["model"]).features(tokens), at=last)

  def _rollout_stats(self, trainable, frozen, tokens, mask):
    logp, values = self._logprobs_values(trainable["model"], tokens, trainable["value_head"])
    ref_logp, _ = self._logprobs_values(frozen["reference"], tokens)
    last = jnp.maximum(jnp.sum(mask, axis=1).astype(jnp.int32) - 1, 0)
    last = last + (tokens.shape[1] - 1 - mask.shape[1])  # the input index of the final target
    if self.reward_fn is not None:
      scores = self.reward_fn(tokens, mask)
    else:
      scores = self._scores(frozen["reward_model"], tokens, last)
    return logp, values, ref_logp, scores

  def _sample(self, params, frozen, prompts, rng):
    """Responses to `prompts` from the policy, and what the losses need about them."""
    responses = generate(self.graphdef, params["model"], prompts, rng,
                         max_new_tokens=self.settings.new_tokens,
                         temperature=self.settings.temperature,
                         top_k=0)
    tokens = jnp.concatenate([prompts, responses], axis=1)
    response_mask = _response_mask(responses, self.stop_id)
    mask = jnp.concatenate([jnp.zeros((len(tokens), prompts.shape[1] - 1)), response_mask], 1)
    logp, values, ref_logp, scores = self._stats(params, frozen, tokens, response_mask)
    return tokens, mask, logp, values, ref_logp, scores

  def evaluate(self, params, prompts: np.ndarray, seed: int = 0) -> dict:
    """Mean score and KL to the reference (summed over each response) of one sample per
    prompt, e.g. on held-out prompts; params: trainable parameters (or the initial policy)."""
    frozen = self.frozen()
    if "value_head" not in params:
      params = {"model": params, "value_head": init_scalar_head(self.config.model.d_model)}
    _, mask, logp, _, ref_logp, scores = self._sample(params, frozen, jnp.asarray(prompts),
                                                      jax.random.key(seed))
    kl = jnp.sum((logp - ref_logp) * mask, axis=1)
    return {"score": float(jnp.mean(scores)),
            "score_std_error": float(jnp.std(scores) / np.sqrt(len(prompts))),
            "kl": float(jnp.mean(kl)),
            "response_tokens": float(jnp.mean(jnp.sum(mask, axis=1))), "prompts": len(prompts)}

  def rollout(self, rng, frozen) -> dict:
    """One rollout's training rows (numpy), and its statistics in self.history."""
    settings = self.settings
    pick = jax.random.choice(rng, len(self.prompts), (settings.rollout_prompts,), replace=False)
    prompts = jnp.repeat(jnp.asarray(self.prompts)[pick], settings.group_size, axis=0)
    tokens, mask, logp, values, ref_logp, scores = self._sample(self.params, frozen, prompts,
                                                                rng)
    rewards, kl = rl_losses.kl_penalised_rewards(scores, logp, ref_logp, mask, self.kl_coef)
    if settings.algo == "grpo":
      returns_seq = jnp.sum(rewards, axis=1)
      advantages = rl_losses.group_advantages(returns_seq, settings.group_size)[:, None] * mask
      returns, values = jnp.zeros_like(rewards), jnp.zeros_like(rewards)
    else:
      advantages, returns = rl_losses.gae(rewards, values * mask, mask, settings.gamma,
                                          settings.lam)
      advantages = rl_losses.whiten(advantages, mask)
    mean_kl = float(jnp.sum(kl) / len(tokens))
    self.history.append({"score": float(jnp.mean(scores)), "kl": mean_kl,
                         "kl_coef": self.kl_coef})
    if settings.kl_target > 0:
      self.kl_coef = rl_losses.adaptive_kl_coef(self.kl_coef, mean_kl, settings.kl_target,
                                                settings.kl_horizon, len(tokens))
    return {k: np.asarray(v) for k, v in dict(
        tokens=tokens, mask=mask, old_logprobs=logp, old_values=values * mask,
        advantages=advantages, returns=returns,
        score=jnp.broadcast_to(scores[:, None], mask.shape)).items()}

  def train_batches(self, seed: int):
    return _Rollouts(self, seed)

  def loss_fn(self, trainable, frozen, batch, rng):
    del frozen, rng
    settings = self.settings
    head = trainable["value_head"] if settings.algo == "ppo" else None
    logp, values = self._logprobs_values(trainable["model"], batch["tokens"], head)
    mask = batch["mask"]
    loss, metrics = rl_losses.ppo_policy_loss(logp, batch["old_logprobs"], batch["advantages"],
                                              mask, settings.clip)
    if settings.algo == "ppo":
      value_loss, value_metrics = rl_losses.ppo_value_loss(
          values, batch["old_values"], batch["returns"], mask, settings.value_clip)
      loss = loss + settings.vf_coef * value_loss
      metrics.update(value_metrics, **{"value/loss": value_loss})
    metrics["rollout/score"] = jnp.mean(batch["score"][:, 0])
    return loss, metrics

  def tokens_per_example(self) -> int:
    return self.prompts.shape[1] + self.settings.new_tokens

  def flops_per_example(self) -> float:
    seq = self.tokens_per_example()
    return training_flops_per_token(self.config.model, seq) * seq


class _Rollouts:
  """Minibatches of the current rollout; a new rollout after `epochs` passes."""

  def __init__(self, task: PPOTask, seed: int):
    self.task, self.seed, self.consumed = task, seed, 0
    self.rows, self.order = None, []

  def __iter__(self):
    return self

  def __next__(self):
    settings, task = self.task.settings, self.task
    per_rollout = settings.epochs * settings.minibatches
    if self.consumed % per_rollout == 0 or self.rows is None:
      rng = jax.random.fold_in(jax.random.key(self.seed), self.consumed // per_rollout)
      self.rows = task.rollout(rng, task.frozen())
      n = len(self.rows["tokens"])
      perm = np.random.default_rng(self.consumed).permutation
      self.order = [perm(n) for _ in range(settings.epochs)]
    step = self.consumed % per_rollout
    epoch, part = divmod(step, settings.minibatches)
    size = len(self.rows["tokens"]) // settings.minibatches
    index = self.order[epoch][part * size:(part + 1) * size]
    self.consumed += 1
    return {k: v[index] for k, v in self.rows.items()}

  def get_state(self):
    return {"global_batches": self.consumed}

  def set_state(self, state):  # a resumed run draws a fresh rollout from the restored policy
    self.consumed, self.rows = int(state["global_batches"]), None

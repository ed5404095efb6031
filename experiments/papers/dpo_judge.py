"""Pairwise judging for the DPO reproduction: win rates with ties counted half, and
SmolLM2-135M-Instruct as an independent judge read in both answer orders.

The judge is asked which of two replies answers a message better; no text is generated: the
logits of the tokens "A" and "B" at the answer position are read. Each pair is shown twice,
policy first and policy second, so the judge's preference for a position cancels.
"""

import math

import numpy as np

JUDGE_PROMPT = ("Which reply answers the user's message better?\n\n"
                "Message: {message}\n\nReply A: {a}\n\nReply B: {b}\n\n"
                "Answer with one letter: A or B.")


def binomial_se(p: float, n: int) -> float:
  """Standard error of a proportion p measured over n independent items."""
  return math.sqrt(max(p * (1.0 - p), 0.0) / n) if n else float("nan")


def win_rate(policy_scores, baseline_scores) -> dict:
  """Share of items where the policy's score beats the baseline's (exact ties count half),
  with its binomial standard error."""
  diff = np.asarray(policy_scores, np.float64) - np.asarray(baseline_scores, np.float64)
  outcomes = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
  rate = float(outcomes.mean()) if len(outcomes) else float("nan")
  return {"win_rate": rate, "se": binomial_se(rate, len(outcomes)), "n": int(len(outcomes)),
          "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
          "losses": int((diff < 0).sum())}


def _vote(diff):
  return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))


def two_order_verdict(policy_first, policy_second) -> dict:
  """Aggregates a judge over both orders.

  policy_first[i] = logit("A") - logit("B") with the policy's reply as A (the baseline's as B);
  policy_second[i] = the same logit difference with the baseline as A and the policy as B.
  The win rate reads the summed log-odds for the policy, policy_first - policy_second: a
  judge's constant preference for one position cancels in it (a tie counts half). The vote
  count treats each order as one vote (item outcome = the mean of its two votes, so orders that
  disagree tie); with a judge that always answers "A" it is 0.5 whatever the replies. Also: the
  share of items whose two votes agree and how often the judge picked "A" (0.5 = no bias).
  """
  first = np.asarray(policy_first, np.float64)
  second = np.asarray(policy_second, np.float64)
  n = len(first)
  if not n:
    return {"win_rate": float("nan"), "se": float("nan"), "n": 0}
  vote_first, vote_second = _vote(first), _vote(-second)
  votes = float(((vote_first + vote_second) / 2).mean())
  return dict(win_rate(first - second, np.zeros(n)),
              win_rate_votes=votes, se_votes=binomial_se(votes, n),
              win_rate_policy_as_a=float(vote_first.mean()),
              win_rate_policy_as_b=float(vote_second.mean()),
              order_agreement=float((vote_first == vote_second).mean()),
              picked_a_share=float(np.concatenate([first > 0, second > 0]).mean()),
              mean_a_minus_b_logit=float(np.concatenate([first, second]).mean()))


class SmolJudge:
  """SmolLM2-135M-Instruct imported into our JAX model, scoring "A" against "B".

  `template` (with {message}, {a}, {b}) is the user turn; `prefill` starts the assistant's
  reply, and `letters` are the two answers whose logits are compared right after it."""

  def __init__(self, template: str = JUDGE_PROMPT, prefill: str = "", letters=("A", "B"),
               smol=None, batch_size: int = 8, bucket: int = 64, max_tokens: int = 512):
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from llm.interop.smollm2 import SmolLM2
    self.smol = smol or SmolLM2()
    self.template, self.prefill = template, prefill
    self.batch_size, self.bucket, self.max_tokens = batch_size, bucket, max_tokens
    tokenizer = self.smol.tokenizer
    encoded = [tokenizer.encode(letter) for letter in letters]
    if any(len(ids) != 1 for ids in encoded):
      raise ValueError(f"the judge's answers {letters} are not single tokens: {encoded}")
    self.pair = jnp.asarray([ids[0] for ids in encoded], jnp.int32)
    graphdef = self.smol.graphdef

    def a_minus_b(params, ids, last, pair):
      model = nnx.merge(graphdef, params)
      features = jnp.take_along_axis(model.features(ids), last[:, None, None], axis=1)
      logits = model.head(features)[:, 0]
      return logits[:, pair[0]] - logits[:, pair[1]]

    self._a_minus_b = jax.jit(a_minus_b)

  def prompt_ids(self, message: str, reply_a: str, reply_b: str) -> list[int]:
    text = self.template.format(message=message.strip(), a=reply_a.strip() or "(empty)",
                                b=reply_b.strip() or "(empty)")
    ids = self.smol.chat_ids([{"role": "user", "content": text}])
    if self.prefill:
      ids = ids + self.smol.tokenizer.encode(self.prefill)
    return ids[-self.max_tokens:]

  def a_minus_b(self, prompts: list[list[int]]) -> np.ndarray:
    """logit("A") - logit("B") at the answer position of each prompt (right-padded batches of
    bucketed length, so a few compilations serve all)."""
    import jax.numpy as jnp
    out = np.zeros(len(prompts), np.float64)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for at in range(0, len(order), self.batch_size):
      rows = order[at:at + self.batch_size]
      filled = rows + [rows[-1]] * (self.batch_size - len(rows))
      width = -(-max(len(prompts[i]) for i in filled) // self.bucket) * self.bucket
      ids = np.zeros((len(filled), width), np.int32)
      for r, i in enumerate(filled):
        ids[r, :len(prompts[i])] = prompts[i]
      last = np.asarray([len(prompts[i]) - 1 for i in filled], np.int32)
      diffs = np.asarray(self._a_minus_b(self.smol.params, jnp.asarray(ids), jnp.asarray(last),
                                         self.pair))
      out[rows] = diffs[:len(rows)]
    return out

  def compare(self, messages: list[str], policy: list[str], baseline: list[str]) -> dict:
    """The two-order verdict of policy replies against baseline replies, prompt by prompt."""
    first = [self.prompt_ids(m, p, b) for m, p, b in zip(messages, policy, baseline)]
    second = [self.prompt_ids(m, b, p) for m, p, b in zip(messages, policy, baseline)]
    diffs = self.a_minus_b(first + second)
    n = len(messages)
    verdict = two_order_verdict(diffs[:n], diffs[n:])
    verdict["judge_tokens_mean"] = float(np.mean([len(p) for p in first + second]))
    return verdict

"""Routing tokens to experts, and the expert computation in its two modes, as pure functions.

Tokens are flat here: x [N, d]. A routing picks `top_k` experts per token from a softmax over
the router logits and renormalises their probabilities to sum to one (Mixtral).

- dropless: the N * k assignments are sorted by expert and each expert's rows run through a
  grouped matmul (`jax.lax.ragged_dot`); no token is ever dropped.
- capacity: each expert takes at most C = ceil(capacity_factor * N * k / E) assignments, in
  priority order (every token's first choice before any second choice, then token order, as in
  Switch/GShard); the rest are dropped and contribute nothing.

Both take the experts as a slice [offset, offset + local) of all experts, which is how expert
parallelism calls them on each device.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Routing(NamedTuple):
  weights: jax.Array  # [N, k] float32, renormalised over the chosen experts when k > 1
  experts: jax.Array  # [N, k] int32
  probs: jax.Array    # [N, E] float32 softmax over all experts
  logits: jax.Array   # [N, E] float32


class ExpertWeights(NamedTuple):
  gate: jax.Array  # [E, d, f]
  up: jax.Array    # [E, d, f]
  down: jax.Array  # [E, f, d]


def route(x, router, top_k: int, compute_dtype, jitter: float = 0.0, rng=None) -> Routing:
  """Router logits in float32; multiplicative input jitter U(1 - j, 1 + j) when rng is given.
  Top-k weights are renormalised to sum to 1 (Mixtral); a single choice keeps its probability
  (Switch), since a weight renormalised to 1 would pass the router no gradient from the loss."""
  if jitter > 0 and rng is not None:
    x = x * jax.random.uniform(rng, x.shape, x.dtype, 1.0 - jitter, 1.0 + jitter)
  logits = jnp.dot(x.astype(compute_dtype), router.astype(compute_dtype),
                   preferred_element_type=jnp.float32)
  probs = jax.nn.softmax(logits, axis=-1)
  top, experts = jax.lax.top_k(probs, top_k)
  weights = top / jnp.sum(top, axis=-1, keepdims=True) if top_k > 1 else top
  return Routing(weights, experts.astype(jnp.int32), probs, logits)


def routing_statistics(routing: Routing, num_experts: int) -> dict:
  """Sums over these tokens, so callers can add them across devices before normalising."""
  counts = jnp.sum(jax.nn.one_hot(routing.experts, num_experts, dtype=jnp.float32), axis=(0, 1))
  log_probs = jax.nn.log_softmax(routing.logits, axis=-1)
  return {"tokens": jnp.asarray(routing.probs.shape[0], jnp.float32),
          "assignments": counts,                                  # [E]
          "prob_sum": jnp.sum(routing.probs, axis=0),             # [E]
          "z_sum": jnp.sum(jax.nn.logsumexp(routing.logits, axis=-1) ** 2),
          "entropy_sum": -jnp.sum(routing.probs * log_probs)}


def auxiliary_losses(stats: dict, num_experts: int, top_k: int) -> dict:
  """Switch load balance E * sum_e f_e P_e (f: share of assignments, P: mean probability), the
  router z-loss mean(logsumexp(logits)^2), per-expert load and mean router entropy."""
  tokens = jnp.maximum(stats["tokens"], 1.0)
  load = stats["assignments"] / (tokens * top_k)
  mean_prob = stats["prob_sum"] / tokens
  return {"load_balance": num_experts * jnp.sum(load * mean_prob),
          "z_loss": stats["z_sum"] / tokens, "load": load,
          "router_entropy": stats["entropy_sum"] / tokens}


def _swiglu(x, w: ExpertWeights, matmul):
  hidden = jax.nn.silu(matmul(x, w.gate)) * matmul(x, w.up)
  return matmul(hidden, w.down)


def expert_input_grams(x, routing: Routing, w: ExpertWeights):
  """Per-expert calibration statistics (for GPTQ) over the tokens routed to each expert:
  (x^T x [E, d, d], h^T h [E, f, f] of the down projection's input, tokens [E]). Runs every
  expert on every token, one expert at a time, so it is for calibration only."""
  num_experts = w.gate.shape[0]
  x = x.astype(jnp.float32)
  routed = jnp.any(routing.experts[..., None] == jnp.arange(num_experts), axis=1)  # [N, E]

  def one(args):
    mask, gate, up = args
    hidden = jax.nn.silu(x @ gate.astype(jnp.float32)) * (x @ up.astype(jnp.float32))
    return ((x * mask[:, None]).T @ x, (hidden * mask[:, None]).T @ hidden,
            jnp.sum(mask))

  return jax.lax.map(one, (routed.T.astype(jnp.float32), w.gate, w.up))


def dropless(x, routing: Routing, w: ExpertWeights, compute_dtype, offset=0):
  """[N, d] -> [N, d] float32: every assignment to experts offset..offset+local-1, grouped."""
  n, k = routing.experts.shape
  local = w.gate.shape[0]
  expert = routing.experts.reshape(-1) - offset
  mine = (expert >= 0) & (expert < local)
  group = jnp.where(mine, expert, local)  # other devices' experts sort last, outside any group
  order = jnp.argsort(group, stable=True)
  sizes = jnp.sum(jax.nn.one_hot(group, local + 1, dtype=jnp.int32), axis=0)[:local]
  rows = x[order // k].astype(compute_dtype)

  def matmul(a, b):
    return jax.lax.ragged_dot(a.astype(compute_dtype), b.astype(compute_dtype), sizes,
                              preferred_element_type=jnp.float32)

  out_sorted = _swiglu(rows, w, matmul)  # rows outside every group come back as zeros
  out = jnp.zeros_like(out_sorted).at[order].set(out_sorted).reshape(n, k, -1)
  return jnp.einsum("nkd,nk->nd", out, routing.weights)


def capacity(num_tokens: int, num_experts: int, top_k: int, factor: float) -> int:
  return max(1, math.ceil(factor * num_tokens * top_k / num_experts))


def positions_in_expert(experts, num_experts: int):
  """For assignments [N, k] in priority order (choice rank, then token): each one's index in
  its expert's queue, as [N, k]."""
  by_rank = experts.T.reshape(-1)  # all first choices, then all second choices, ...
  one_hot = jax.nn.one_hot(by_rank, num_experts, dtype=jnp.int32)
  position = jnp.sum((jnp.cumsum(one_hot, axis=0) - 1) * one_hot, axis=-1)
  return position.reshape(experts.shape[1], experts.shape[0]).T


def dispatch(x, routing: Routing, num_experts: int, slots: int):
  """Scatters tokens into per-expert buffers [E, slots, d]; returns (buffers, kept [N, k],
  position [N, k]). Assignments past an expert's `slots` are dropped."""
  n, k = routing.experts.shape
  position = positions_in_expert(routing.experts, num_experts)
  kept = position < slots
  slot = jnp.where(kept, position, slots)  # out of range: dropped by the scatter
  tokens = jnp.broadcast_to(x[:, None, :], (n, k, x.shape[-1]))
  buffers = jnp.zeros((num_experts, slots, x.shape[-1]), x.dtype)
  buffers = buffers.at[routing.experts, slot].set(tokens, mode="drop")
  return buffers, kept, slot


def combine(outputs, routing: Routing, kept, slot):
  """Gathers [E, slots, d] expert outputs back to tokens, weighted: [N, d] float32."""
  picked = outputs.at[routing.experts, slot].get(mode="fill", fill_value=0.0)  # [N, k, d]
  return jnp.einsum("nkd,nk->nd", picked, routing.weights * kept)


def expert_mlps(buffers, w: ExpertWeights, compute_dtype):
  """[E, slots, d] through each expert's SwiGLU -> [E, slots, d] float32."""
  def matmul(a, b):
    return jnp.einsum("esd,edf->esf", a.astype(compute_dtype), b.astype(compute_dtype),
                      preferred_element_type=jnp.float32)
  return _swiglu(buffers, w, matmul)


def with_capacity(x, routing: Routing, w: ExpertWeights, compute_dtype, factor: float):
  """[N, d] -> ([N, d] float32, dropped assignments) on one device (all experts local)."""
  num_experts = w.gate.shape[0]
  slots = capacity(x.shape[0], num_experts, routing.experts.shape[1], factor)
  buffers, kept, slot = dispatch(x, routing, num_experts, slots)
  out = combine(expert_mlps(buffers, w, compute_dtype), routing, kept, slot)
  return out, jnp.sum(~kept).astype(jnp.float32)

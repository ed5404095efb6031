"""Attention against a naive per-head loop; causality, packing and GQA==MHA (acceptance a-c)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llm.model import build_model
from llm.model.attention import attention_mask, xla_attention
from tests.conftest import micro_config


def naive_attention(q, k, v, q_pos, k_pos, q_seg, k_seg):
  """Per batch, head and query: softmax over visible keys, in float64 numpy."""
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  b, t, h, d = q.shape
  group = h // k.shape[2]
  out = np.zeros_like(q)
  for bi in range(b):
    for hi in range(h):
      for ti in range(t):
        visible = [s for s in range(k.shape[1])
                   if k_pos[bi, s] <= q_pos[bi, ti] and k_seg[bi, s] == q_seg[bi, ti]]
        scores = np.array([q[bi, ti, hi] @ k[bi, s, hi // group] for s in visible]) / np.sqrt(d)
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        out[bi, ti, hi] = sum(w * v[bi, s, hi // group] for w, s in zip(weights, visible))
  return out


def test_xla_attention_matches_naive_loop_with_segments():
  rng = np.random.default_rng(0)
  b, t, h, kv, d = 2, 6, 4, 2, 8
  q = rng.normal(size=(b, t, h, d)).astype(np.float32)
  k = rng.normal(size=(b, t, kv, d)).astype(np.float32)
  v = rng.normal(size=(b, t, kv, d)).astype(np.float32)
  seg = np.array([[1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 1, 1]])
  pos = np.array([[0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 4, 5]])
  got = xla_attention(q, k, v, attention_mask(pos, pos, seg, seg))
  np.testing.assert_allclose(got, naive_attention(q, k, v, pos, pos, seg, seg), atol=1e-5)


def test_query_blocked_attention_matches_naive_loop():
  rng = np.random.default_rng(1)
  b, t, h, kv, d = 2, 12, 4, 1, 8
  q, k, v = (rng.normal(size=(b, t, n, d)).astype(np.float32) for n in (h, kv, kv))
  seg = np.array([[1] * 5 + [2] * 7, [1] * 12])
  pos = np.array([list(range(5)) + list(range(7)), list(range(12))])
  got = xla_attention(q, k, v, attention_mask(pos, pos, seg, seg), query_block=4)
  np.testing.assert_allclose(got, naive_attention(q, k, v, pos, pos, seg, seg), atol=1e-5)


def test_causality_future_tokens_do_not_change_past_logits():
  model = build_model(micro_config().model)
  tokens = jax.random.randint(jax.random.key(0), (2, 16), 0, 64)
  changed = tokens.at[:, 9:].set((tokens[:, 9:] + 7) % 64)
  a, b = model(tokens), model(changed)
  np.testing.assert_array_equal(np.asarray(a[:, :9]), np.asarray(b[:, :9]))
  assert not np.allclose(a[:, 9:], b[:, 9:])


def test_packed_document_logits_equal_document_alone():
  model = build_model(micro_config().model)
  doc_a = jax.random.randint(jax.random.key(1), (1, 7), 0, 64)
  doc_b = jax.random.randint(jax.random.key(2), (1, 9), 0, 64)
  packed = jnp.concatenate([doc_a, doc_b], axis=1)
  segments = jnp.array([[1] * 7 + [2] * 9])
  positions = jnp.array([list(range(7)) + list(range(9))])
  packed_logits = model(packed, positions, segments)
  np.testing.assert_allclose(packed_logits[:, 7:], model(doc_b), atol=1e-5)
  np.testing.assert_allclose(packed_logits[:, :7], model(doc_a), atol=1e-5)


def test_gqa_with_replicated_kv_weights_equals_mha():
  gqa = build_model(micro_config(num_heads=4, num_kv_heads=2).model)
  mha = build_model(micro_config(num_heads=4, num_kv_heads=4).model)
  params = nnx.to_pure_dict(nnx.state(gqa, nnx.Param))
  attn = params["layers"]["attn"]
  for name in ("k_proj", "v_proj"):  # [layers, d, kv, hd] -> [layers, d, heads, hd]
    attn[name] = jnp.repeat(attn[name], 2, axis=2)
  nnx.update(mha, params)
  tokens = jax.random.randint(jax.random.key(3), (2, 16), 0, 64)
  np.testing.assert_allclose(mha(tokens), gqa(tokens), atol=1e-5)


def test_mqa_is_supported():
  model = build_model(micro_config(num_heads=4, num_kv_heads=1).model)
  assert model(jnp.zeros((1, 5), jnp.int32)).shape == (1, 5, 64)

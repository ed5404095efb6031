"""The decoder-only transformer: embed -> scanned blocks -> RMSNorm -> (tied) output head."""

import jax
import jax.numpy as jnp
from flax import nnx

from llm.model.attention import LayerCache
from llm.model.block import Block
from llm.model.norm import RMSNorm
from llm.model.ops import dtype_of, mixed_einsum
from llm.model.remat import apply_remat
from llm.model.rope import inverse_frequencies, rotary_tables
from llm.parallel.pipeline import constrain_activations, gpipe, mesh_stages, one_f_one_b


def _stacked_blocks(model_config, rngs: nnx.Rngs):
  """`num_layers` blocks whose parameters carry a leading 'layers' axis, ready for lax.scan."""
  @nnx.vmap(in_axes=0, out_axes=0)
  def make(key):
    return Block(model_config, nnx.Rngs(params=key), moe=model_config.moe.num_experts > 0)
  blocks = make(jax.random.split(rngs.params(), model_config.num_layers))
  for _, var in nnx.iter_graph(blocks):
    if isinstance(var, nnx.Variable):
      var.set_metadata(logical_axes=("layers",) + tuple(var.get_metadata()["logical_axes"]))
  return blocks


def is_moe_layer(model_config, index: int) -> bool:
  """MoE replaces the MLP in every `moe.every`-th layer (all of them when every == 1)."""
  return model_config.moe.num_experts > 0 and (index + 1) % model_config.moe.every == 0


class Transformer(nnx.Module):

  def __init__(self, model_config, rngs: nnx.Rngs):
    """`model_config` is the `config.model` section."""
    normal = jax.nn.initializers.normal
    d_model, vocab_size = model_config.d_model, model_config.vocab_size
    self.embed = nnx.Param(normal(model_config.init_std)(rngs.params(), (vocab_size, d_model)),
                           logical_axes=("vocab", "embed"))
    if model_config.scan_layers:
      self.layers = _stacked_blocks(model_config, rngs)
    else:
      self.layers = nnx.List([Block(model_config, rngs, moe=is_moe_layer(model_config, i))
                              for i in range(model_config.num_layers)])
    self.final_norm = RMSNorm(d_model, model_config.norm_eps)
    if not model_config.tie_embeddings:
      self.lm_head = nnx.Param(normal(model_config.init_std)(rngs.params(), (d_model, vocab_size)),
                               logical_axes=("embed", "vocab"))
    inv_freq, self.rope_attention_scale = inverse_frequencies(model_config.head_dim,
                                                              model_config.rope)
    self.rope_inv_freq = tuple(float(f) for f in inv_freq)
    self.compute_dtype = dtype_of(model_config.compute_dtype)
    self.scan_layers = model_config.scan_layers
    self.remat_policy = model_config.remat_policy
    self.pipeline_microbatches = model_config.pipeline_microbatches
    self.pipeline_schedule = model_config.pipeline_schedule
    self.tie_embeddings = model_config.tie_embeddings
    self.num_layers = model_config.num_layers
    self.num_moe_layers = sum(is_moe_layer(model_config, i)
                              for i in range(model_config.num_layers))
    self.kv_shape = (model_config.num_kv_heads, model_config.head_dim)

  def __call__(self, tokens, positions=None, segment_ids=None):
    """tokens [batch, seq] -> logits [batch, seq, vocab] float32 (no cache)."""
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    if segment_ids is None:
      segment_ids = jnp.ones_like(tokens)
    return self.forward_with_aux(tokens, positions, segment_ids)[0]

  def forward_with_aux(self, tokens, positions=None, segment_ids=None, rng=None):
    """(logits, MoE metrics averaged over the MoE layers: load_balance, z_loss, load [E],
    router_entropy, dropped_fraction; {} for a dense model). rng: router jitter, if any."""
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    if segment_ids is None:
      segment_ids = jnp.ones_like(tokens)
    logits, _, aux = self._forward(tokens, positions, segment_ids, None, None, rng)
    return logits, aux

  def init_cache(self, batch: int, max_len: int, dtype=jnp.float32) -> LayerCache:
    """An empty KV cache for all layers: k, v [layers, batch, max_len, kv_heads, head_dim]."""
    shape = (self.num_layers, batch, max_len) + self.kv_shape
    return LayerCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

  def decode(self, tokens, cache: LayerCache, cache_index):
    """Runs tokens [batch, t] at positions cache_index.. ; returns (logits, updated cache).
    cache_index is a scalar, or one index per row [batch] (rows of different lengths)."""
    cache_index = jnp.asarray(cache_index)
    start = cache_index[:, None] if cache_index.ndim == 1 else cache_index
    positions = start + jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    logits, cache, _ = self._forward(tokens, positions, jnp.ones_like(tokens), cache,
                                     cache_index, None)
    return logits, cache

  def features(self, tokens, positions=None, segment_ids=None):
    """Final normalised hidden states [batch, seq, d_model] float32: what the output head
    reads, and what reward and value heads read."""
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    if segment_ids is None:
      segment_ids = jnp.ones_like(tokens)
    return self._hidden(tokens, positions, segment_ids, None, None, None)[0]

  def _hidden(self, tokens, positions, segment_ids, cache, cache_index, rng):
    # asarray: parameters fetched to the host (numpy) still index with traced token ids
    x = jnp.asarray(self.embed[...])[tokens].astype(jnp.float32)
    rotary = rotary_tables(positions, self.rope_inv_freq, self.rope_attention_scale)
    x, cache, aux = self._run_layers(x, rotary, positions, segment_ids, cache, cache_index, rng)
    return self.final_norm(x), cache, aux

  def head(self, features):
    """Logits [batch, seq, vocab] float32 from `features` (the tied embedding or lm_head)."""
    if self.tie_embeddings:
      return mixed_einsum("btd,vd->btv", features, self.embed[...], self.compute_dtype)
    return mixed_einsum("btd,dv->btv", features, self.lm_head[...], self.compute_dtype)

  def _forward(self, tokens, positions, segment_ids, cache, cache_index, rng):
    x, cache, aux = self._hidden(tokens, positions, segment_ids, cache, cache_index, rng)
    return self.head(x), cache, aux

  def _mean_over_moe_layers(self, per_layer: list[dict]) -> dict:
    per_layer = [a for a in per_layer if a]
    if not per_layer:
      return {}
    return jax.tree.map(lambda *xs: sum(xs) / self.num_moe_layers, *per_layer)

  def _run_layers(self, x, rotary, positions, segment_ids, cache, cache_index, rng):
    def run_block(block, x, layer_cache, layer_rng):
      return block(x, rotary, positions, segment_ids, layer_cache, cache_index, layer_rng)

    rngs = None if rng is None else jax.random.split(rng, self.num_layers)
    if not self.scan_layers:
      new_caches, auxes = [], []
      for i, block in enumerate(self.layers):
        layer_cache = None if cache is None else LayerCache(cache.k[i], cache.v[i])
        x, layer_cache, aux = apply_remat(
            lambda x, c, r, b=block: run_block(b, x, c, r), self.remat_policy)(
                x, layer_cache, None if rngs is None else rngs[i])
        new_caches.append(layer_cache)
        auxes.append(aux)
      aux = self._mean_over_moe_layers(auxes)
      if cache is None:
        return x, None, aux
      return x, LayerCache(jnp.stack([c.k for c in new_caches]),
                           jnp.stack([c.v for c in new_caches])), aux

    graphdef, stacked_state = nnx.split(self.layers)

    def body(x, layer):
      layer_state, layer_cache, layer_rng = layer
      x, layer_cache, aux = run_block(nnx.merge(graphdef, layer_state), x, layer_cache,
                                      layer_rng)
      return constrain_activations(x), (layer_cache, aux)  # block boundary: batch stays split

    stages = mesh_stages()
    if stages > 1 and cache is None:
      return self._pipelined(graphdef, stacked_state, x, rotary, positions, segment_ids,
                             stages), None, {}
    x, (cache, aux) = jax.lax.scan(apply_remat(body, self.remat_policy), x,
                                   (stacked_state, cache, rngs))
    return x, cache, jax.tree.map(lambda a: jnp.sum(a, axis=0) / max(self.num_moe_layers, 1),
                                  aux)

  def _pipelined(self, graphdef, stacked_state, x, rotary, positions, segment_ids, stages):
    """The scanned layers as a pipeline over the mesh's `stage` axis (GPipe or 1F1B)."""
    m = self.pipeline_microbatches
    if self.num_layers % stages or x.shape[0] % m:
      raise ValueError(f"pipeline: {self.num_layers} layers over {stages} stages and batch "
                       f"{x.shape[0]} in {m} micro-batches must both divide evenly "
                       "(model.num_layers, train.batch_size, model.pipeline_microbatches)")
    split = lambda a: a.reshape((m, a.shape[0] // m) + a.shape[1:])  # noqa: E731
    per_stage = jax.tree.map(lambda p: p.reshape((stages, -1) + p.shape[1:]), stacked_state)

    def stage_fn(layers, x, extras):
      rotary, positions, segment_ids = extras

      def body(x, layer_state):
        block = nnx.merge(graphdef, layer_state)
        return block(x, rotary, positions, segment_ids, None, None)[:2]

      return jax.lax.scan(apply_remat(body, self.remat_policy), x, layers)[0]

    schedule = one_f_one_b if self.pipeline_schedule == "1f1b" else gpipe
    out = schedule(stage_fn, per_stage, split(x),
                   (jax.tree.map(split, rotary), split(positions), split(segment_ids)), stages)
    return out.reshape(x.shape)

"""SwiGLU feed-forward block (Shazeer, 2020): down(silu(gate(x)) * up(x))."""

import jax
from flax import nnx

from llm.model.lora import attach_loras, project


class SwiGLU(nnx.Module):

  def __init__(self, d_model: int, mlp_dim: int, *, init_std: float, out_std: float,
               compute_dtype, rngs: nnx.Rngs, lora=None):
    normal = jax.nn.initializers.normal
    self.gate = nnx.Param(normal(init_std)(rngs.params(), (d_model, mlp_dim)),
                          logical_axes=("embed", "mlp"))
    self.up = nnx.Param(normal(init_std)(rngs.params(), (d_model, mlp_dim)),
                        logical_axes=("embed", "mlp"))
    self.down = nnx.Param(normal(out_std)(rngs.params(), (mlp_dim, d_model)),
                          logical_axes=("mlp", "embed"))
    self.compute_dtype = compute_dtype
    attach_loras(self, (("gate", 1), ("up", 1), ("down", 1)), lora, rngs)

  def _project(self, name, equation, x, rng):
    return project(self, name, equation, x, self.compute_dtype, rng)

  def __call__(self, x, rng=None):
    """[batch, seq, d_model] -> [batch, seq, d_model] (float32). rng: LoRA dropout."""
    rngs = [None] * 3 if rng is None else list(jax.random.split(rng, 3))
    hidden = jax.nn.silu(self._project("gate", "btd,dm->btm", x, rngs[0]))
    hidden = hidden * self._project("up", "btd,dm->btm", x, rngs[1])
    return self._project("down", "btm,md->btd", hidden, rngs[2])

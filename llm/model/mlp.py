"""SwiGLU feed-forward block (Shazeer, 2020): down(silu(gate(x)) * up(x))."""

import jax
from flax import nnx

from llm.model.ops import mixed_einsum


class SwiGLU(nnx.Module):

  def __init__(self, d_model: int, mlp_dim: int, *, init_std: float, out_std: float,
               compute_dtype, rngs: nnx.Rngs):
    normal = jax.nn.initializers.normal
    self.gate = nnx.Param(normal(init_std)(rngs.params(), (d_model, mlp_dim)),
                          logical_axes=("embed", "mlp"))
    self.up = nnx.Param(normal(init_std)(rngs.params(), (d_model, mlp_dim)),
                        logical_axes=("embed", "mlp"))
    self.down = nnx.Param(normal(out_std)(rngs.params(), (mlp_dim, d_model)),
                          logical_axes=("mlp", "embed"))
    self.compute_dtype = compute_dtype

  def __call__(self, x):
    """[batch, seq, d_model] -> [batch, seq, d_model] (float32)."""
    cd = self.compute_dtype
    hidden = jax.nn.silu(mixed_einsum("btd,dm->btm", x, self.gate[...], cd))
    hidden = hidden * mixed_einsum("btd,dm->btm", x, self.up[...], cd)
    return mixed_einsum("btm,md->btd", hidden, self.down[...], cd)

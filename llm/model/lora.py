"""Low-rank adapters (Hu et al., 2021) on the model's projections, and merging them back.

A projection y = einsum(eq, x, W) with W = [in..., out...] gains
y += (alpha / rank) * einsum(dropout(x) A) B, with A [in..., rank] (random) and B [rank,
out...] (zeros), so a fresh adapter changes nothing. `model.lora` picks the rank, alpha,
dropout and the target projections (q_proj, k_proj, v_proj, o_proj, gate, up, down); train
only the adapters with `--config.train.trainable=lora`. `merge_lora` folds W + scale * A B
into the base weights for export and serving (the config then needs lora.rank=0).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm.model.capture import record
from llm.model.ops import mixed_einsum

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate", "up", "down")


def targets_of(lora_config) -> tuple[str, ...]:
  if not lora_config.rank:
    return ()
  return tuple(t.strip() for t in lora_config.targets.split(",") if t.strip())


class LoRA(nnx.Module):
  """The adapter of one weight of shape in_shape + out_shape, with their logical axes."""

  def __init__(self, in_shape, out_shape, in_axes, out_axes, lora_config, rngs: nnx.Rngs):
    rank = lora_config.rank
    fan_in = 1
    for n in in_shape:
      fan_in *= n
    self.a = nnx.Param(jax.random.normal(rngs.params(), tuple(in_shape) + (rank,)) * fan_in**-0.5,
                       logical_axes=tuple(in_axes) + ("lora_rank",))
    self.b = nnx.Param(jnp.zeros((rank,) + tuple(out_shape)),
                       logical_axes=("lora_rank",) + tuple(out_axes))
    self.scale = lora_config.alpha / rank
    self.dropout = lora_config.dropout

  def __call__(self, equation: str, x, compute_dtype, rng=None):
    """The adapter's addition to einsum(equation, x, W), float32."""
    inputs, out = equation.split("->")
    x_letters, w_letters = inputs.split(",")
    n_in = self.a.ndim - 1
    in_letters, out_letters = w_letters[:n_in], w_letters[n_in:]
    mid = "".join(c for c in x_letters if c not in in_letters) + "z"
    if self.dropout > 0 and rng is not None:
      keep = jax.random.bernoulli(rng, 1.0 - self.dropout, x.shape)
      x = jnp.where(keep, x / (1.0 - self.dropout), 0.0).astype(x.dtype)
    down = mixed_einsum(f"{x_letters},{in_letters}z->{mid}", x, self.a[...], compute_dtype)
    return self.scale * mixed_einsum(f"{mid},z{out_letters}->{out}", down, self.b[...],
                                     compute_dtype)


def attach_loras(module, weights, lora_config, rngs) -> None:
  """Gives `module` a `<name>_lora` adapter for each targeted (name, input rank) weight."""
  if lora_config is None:
    return
  for name, n_in in weights:
    if name in targets_of(lora_config):
      weight = getattr(module, name)
      axes = weight.get_metadata()["logical_axes"]
      setattr(module, f"{name}_lora", LoRA(weight.shape[:n_in], weight.shape[n_in:],
                                           axes[:n_in], axes[n_in:], lora_config, rngs))


def project(module, name: str, equation: str, x, compute_dtype, rng=None):
  """einsum(equation, x, module.<name>), plus its adapter's part when it has one."""
  x_letters, w_letters = equation.split("->")[0].split(",")
  record(module, name, x, sum(c in w_letters for c in x_letters))  # for calibration
  weight = getattr(module, name).get_value()
  if hasattr(weight, "contract"):  # a packed quantized weight multiplies by itself
    out = weight.contract(x, compute_dtype)
  else:
    out = mixed_einsum(equation, x, weight, compute_dtype)
  adapter = getattr(module, f"{name}_lora", None)
  if adapter is not None:
    out = out + adapter(equation, x, compute_dtype, rng)
  return out


def _fold(weight, a, b, scale):
  """weight + scale * (a contracted with b over the rank), with a leading layers axis or not."""
  lead = a.ndim + b.ndim - 2 - weight.ndim  # 1 for stacked layers, else 0
  a2 = a.reshape(a.shape[:lead] + (-1, a.shape[-1]))
  b2 = b.reshape(b.shape[:lead] + (b.shape[lead], -1))
  delta = jnp.einsum("...ir,...ro->...io", a2, b2).reshape(weight.shape)
  return weight + scale * delta


def merge_lora(params: dict, lora_config) -> dict:
  """Parameters without adapters: every `<name>_lora` folded into its `<name>` weight."""
  scale = lora_config.alpha / lora_config.rank

  def visit(tree):
    out = {}
    for key, value in tree.items():
      if str(key).endswith("_lora"):
        continue
      if isinstance(value, dict):
        out[key] = visit(value)
      elif f"{key}_lora" in tree:
        adapter = tree[f"{key}_lora"]
        out[key] = _fold(value, adapter["a"], adapter["b"], scale)
      else:
        out[key] = value
    return out

  return visit(params)

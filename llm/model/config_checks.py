"""Validation of `config.model` against the model's own tables of what it implements
(attention implementations, RoPE scalings, remat policies, dtypes, LoRA targets, MoE)."""

from llm.config import fail
from llm.model.attention_impls import IMPLS
from llm.model.lora import TARGETS
from llm.model.ops import DTYPES
from llm.model.remat import POLICIES
from llm.model.rope import SCALINGS


def check_model_config(config) -> None:
  """Raises ConfigError naming the field when config.model asks for what the model lacks."""
  model = config.model
  if model.attention_impl not in IMPLS:
    fail("model.attention_impl", f"unknown attention implementation {model.attention_impl!r}",
         f"Choose one of {IMPLS}.")
  if model.rope.scaling not in SCALINGS:
    fail("model.rope.scaling", f"unknown RoPE scaling {model.rope.scaling!r}",
         f"Choose one of {SCALINGS}.")
  if model.rope.scaling != "none" and model.rope.factor < 1.0:
    fail("model.rope.factor", f"a scaling factor below 1 shrinks the context "
         f"({model.rope.factor})", "Use factor >= 1 or rope.scaling='none'.")
  if model.remat_policy not in POLICIES:
    fail("model.remat_policy", f"unknown remat policy {model.remat_policy!r}",
         f"Choose one of {POLICIES}.")
  if model.compute_dtype not in DTYPES:
    fail("model.compute_dtype", f"unsupported dtype {model.compute_dtype!r}",
         f"Choose one of {DTYPES}; parameters always stay float32.")
  _check_lora(model.lora)
  _check_moe(model, config.parallel)


def _check_lora(lora) -> None:
  if lora.rank < 0 or not 0.0 <= lora.dropout < 1.0:
    fail("model.lora", f"rank {lora.rank} must be >= 0 and dropout {lora.dropout} in [0, 1)",
         "E.g. rank=8, alpha=16, dropout=0.05.")
  unknown = [t for t in lora.targets.split(",") if t.strip() and t.strip() not in TARGETS]
  if lora.rank and unknown:
    fail("model.lora.targets", f"unknown projections {unknown}", f"Choose from {TARGETS}.")


def _check_moe(model, parallel) -> None:
  moe = model.moe
  if moe.num_experts == 0:
    return
  total = moe.num_experts + moe.new_experts
  if not 1 <= moe.top_k <= total:
    fail("model.moe.top_k", f"must lie in [1, {total}] (the experts), got {moe.top_k}",
         "Mixtral uses top_k=2.")
  if moe.mode not in ("dropless", "capacity"):
    fail("model.moe.mode", f"unknown mode {moe.mode!r}", "Use dropless or capacity.")
  if moe.mode == "capacity" and moe.capacity_factor <= 0:
    fail("model.moe.capacity_factor", f"must be positive, got {moe.capacity_factor}",
         "Use e.g. 1.25.")
  if moe.every < 1 or model.num_layers % moe.every:
    fail("model.moe.every", f"{model.num_layers} layers do not split into groups of "
         f"{moe.every}", "Choose every >= 1 dividing model.num_layers.")
  if moe.every > 1 and model.scan_layers:
    fail("model.moe.every", "interleaved dense and MoE layers are not one scannable block",
         "Set --config.model.scan_layers=false, or moe.every=1.")
  if parallel.expert > 1 and total % parallel.expert:
    fail("model.moe.num_experts", f"{total} experts do not split over parallel.expert="
         f"{parallel.expert} devices", "Use a number of experts divisible by it.")
  if parallel.stage > 1:
    fail("parallel.stage", "MoE routing statistics do not cross pipeline stages yet",
         "Use parallel.stage=1 with MoE.")

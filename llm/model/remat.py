"""Named rematerialisation policies, selected by `model.remat_policy`.

The names tag tensors with `checkpoint_name` in attention; a policy says which to keep.
"""

import jax

_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "save_dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "save_attn_out": jax.checkpoint_policies.save_only_these_names("attn_out"),
    "save_qkv_proj": jax.checkpoint_policies.save_only_these_names(
        "query_proj", "key_proj", "value_proj"),
}


POLICIES = ("none", *_POLICIES)


def apply_remat(fn, policy: str):
  """Wraps `fn` in jax.checkpoint with the named policy; 'none' returns `fn` unchanged."""
  if policy == "none":
    return fn
  return jax.checkpoint(fn, policy=_POLICIES[policy], prevent_cse=False)

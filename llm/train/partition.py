"""Splitting a parameter tree into trainable and frozen parts by path, and joining them again.

Paths are "/"-joined keys ("layers/mlp/new_gate"); a leaf is trainable when any of the
comma-separated patterns of `train.trainable` occurs in its path ("" trains everything).
"""

import jax


def _walk(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _walk(value, prefix + (str(key),))
    else:
      yield prefix + (str(key),), key, value


def _insert(tree: dict, keys: list, value):
  node = tree
  for key in keys[:-1]:
    node = node.setdefault(key, {})
  node[keys[-1]] = value


def split_trainable(params: dict, patterns: str) -> tuple[dict, dict]:
  """(trainable, frozen) nested dicts with the original keys; raises if nothing matches."""
  wanted = [p.strip() for p in patterns.split(",") if p.strip()]
  if not wanted:
    return params, {}
  trainable, frozen = {}, {}

  def visit(tree, keys):
    for key, value in tree.items():
      if isinstance(value, dict):
        visit(value, keys + [key])
        continue
      path = "/".join(str(k) for k in keys + [key])
      _insert(trainable if any(p in path for p in wanted) else frozen, keys + [key], value)

  visit(params, [])
  if not trainable:
    paths = sorted("/".join(p) for p, _, _ in _walk(params))
    raise ValueError(f"train.trainable={patterns!r} matches no parameter; paths look like "
                     f"{paths[:6]}")
  return trainable, frozen


def merge(trainable: dict, frozen: dict) -> dict:
  """The full tree again (keys of both; they never overlap)."""
  out = {}
  for key in set(trainable) | set(frozen):
    a, b = trainable.get(key), frozen.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      out[key] = merge(a, b)
    else:
      out[key] = a if b is None else b
  return out


def count(tree) -> int:
  """Number of scalars in a pytree of arrays."""
  return sum(int(getattr(v, "size", 0)) for v in jax.tree.leaves(tree))

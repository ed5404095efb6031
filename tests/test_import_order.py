"""Imports point one way, down the lifecycle (shared/DESIGN.md), and form no cycle.

Every import in llm/ and kernels/ is read from the source, at module level and inside
functions alike, and checked against the layer order below; no exception list.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer or any layer before it. The longest
# matching prefix names a module's layer.
LAYERS = (
    ("foundation", ("llm.config", "llm.io", "llm.packages", "llm.runtime")),
    ("kernels", ("kernels",)),
    ("curation", ("llm.data.curation",)),
    ("tokenizer", ("llm.tokenizer",)),
    ("training input", ("llm.data",)),
    ("parallel", ("llm.parallel",)),
    ("model", ("llm.model",)),
    ("train", ("llm.train",)),
    ("align", ("llm.align",)),
    ("interop", ("llm.interop",)),
    ("eval", ("llm.eval",)),
    ("quant", ("llm.quant",)),
    ("safety", ("llm.safety",)),
    ("serve", ("llm.serve",)),
    ("research", ("llm.research",)),
    ("entry points", ("llm.main", "llm.lifecycle", "llm")),
)


def layer_of(module: str) -> int:
  best, rank = -1, None
  for index, (_, prefixes) in enumerate(LAYERS):
    for prefix in prefixes:
      if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
        best, rank = len(prefix), index
  assert rank is not None, f"{module} belongs to no layer: add it to LAYERS"
  return rank


def our_modules() -> dict[str, pathlib.Path]:
  modules = {}
  for top in ("llm", "kernels"):
    for path in sorted((ROOT / top).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      modules[".".join(parts)] = path
  return modules


def imports_of(module: str, path: pathlib.Path, known: set) -> set:
  """Our modules that `module` imports anywhere in its file (`from pkg import submodule`
  counts as importing the submodule)."""
  package = module if path.name == "__init__.py" else module.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + ([base] if base else []))
      names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
               for alias in node.names]
    else:
      continue
    for name in names:
      while name and name not in known:  # `import llm.model.lora` -> the deepest we own
        name = name.rpartition(".")[0]
      if name and name != module:
        found.add(name)
  return found


def import_graph() -> dict[str, set]:
  modules = our_modules()
  return {m: imports_of(m, p, set(modules)) for m, p in modules.items()}


def test_every_import_points_down_the_lifecycle():
  wrong = []
  for module, targets in sorted(import_graph().items()):
    for target in sorted(targets):
      if layer_of(target) > layer_of(module):
        wrong.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                     f"({LAYERS[layer_of(target)][0]})")
  assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for nxt in graph.get(node, ()):
      if nxt not in index:
        visit(nxt)
        low[node] = min(low[node], low[nxt])
      elif nxt in on_stack:
        low[node] = min(low[node], index[nxt])
    if low[node] == index[node]:
      component = []
      while True:
        item = stack.pop()
        on_stack.discard(item)
        component.append(item)
        if item == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_no_import_cycles():
  # A package's __init__ re-exporting its modules is not a cycle of files: leave it out.
  graph = {m: {t for t in targets if not m.startswith(t + ".")}
           for m, targets in import_graph().items()}
  assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_the_walker_sees_function_level_imports(tmp_path):
  source = tmp_path / "m.py"
  source.write_text("import os\n\ndef f():\n  from llm.train import loop\n  import llm.model.lora\n")
  found = imports_of("llm.data.x", source, {"llm.train", "llm.train.loop", "llm.model",
                                            "llm.model.lora"})
  assert found == {"llm.train.loop", "llm.model.lora"}
  assert layer_of("llm.train.loop") > layer_of("llm.data.x") > layer_of("llm.tokenizer.base")
  assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]

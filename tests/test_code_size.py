"""Small files with one job: no module in llm/ over 400 lines, no function over 80 (the listing
of every config default, `default_config`, is the one exception)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LONG_LISTINGS = {("llm/config.py", "default_config")}


def test_no_long_files_or_functions():
  too_long = []
  for path in sorted((ROOT / "llm").rglob("*.py")):
    source = path.read_text(encoding="utf-8")
    name = str(path.relative_to(ROOT))
    lines = source.count("\n")
    if lines > 400:
      too_long.append(f"{name}: {lines} lines")
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > 80 and (name, node.name) not in LONG_LISTINGS:
          too_long.append(f"{name}: {node.name} is {length} lines")
  assert not too_long, "\n".join(too_long)

"""Size limits that keep the code readable: no module over 500 lines, no function over 80 (tests
included: a test over 80 lines is a scenario to split into named steps)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREES = ("autoscaler", "stacks", "bench", "policy")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def sources() -> list[Path]:
    return sorted(p for tree in TREES for p in (REPO / tree).rglob("*.py"))


def test_no_module_is_over_500_lines():
    long = [f"{p.relative_to(REPO)}: {n} lines" for p in sources() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert long == [], "split these modules by concern: " + "; ".join(long)


def test_no_function_is_over_80_lines():
    long = []
    for path in sources() + sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - first + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}() {lines} lines")
    assert long == [], "split these into named steps: " + "; ".join(long)

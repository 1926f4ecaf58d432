"""The library's floor plan: imports run one way (no cycle), each module imports the others at its top,
and no module grows past ~400 lines. Read from the source with `ast`, nothing is imported."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cifar_utils"
MAX_LINES = 400
# Imported inside a function on purpose: heavy, and needed only by one rarely taken path.
LAZY_THIRD_PARTY = {"torch", "torchvision.datasets", "seaborn", "papermill", "papermill.exceptions", "nbconvert",
                    "scipy"}


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(PACKAGE.glob("*.py"))}


def _internal_targets(node: ast.AST) -> list[str]:
    """The cifar_utils modules an import statement names (relative or absolute)."""
    if isinstance(node, ast.ImportFrom):
        if node.level == 1 and node.module is None:
            return [alias.name for alias in node.names]
        if node.level == 1:
            return [node.module.split(".")[0]]
        if node.module and node.module.startswith("cifar_utils."):
            return [node.module.split(".")[1]]
    if isinstance(node, ast.Import):
        return [a.name.split(".")[1] for a in node.names if a.name.startswith("cifar_utils.")]
    return []


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for node in ast.walk(tree) for t in _internal_targets(node) if t in modules and t != name}
            for name, tree in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_are_at_the_top(name):
    """An import inside a function is how a cycle hides; only heavy third-party packages may wait there."""
    tree = _modules()[name]
    late = []
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(func):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("cifar_utils")):
                late.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''}")
            elif isinstance(node, ast.ImportFrom) and node.module not in LAZY_THIRD_PARTY:
                late.append(f"line {node.lineno}: from {node.module}")
            elif isinstance(node, ast.Import) and any(a.name not in LAZY_THIRD_PARTY for a in node.names):
                late.append(f"line {node.lineno}: import {', '.join(a.name for a in node.names)}")
    assert not late, f"{name}.py imports inside functions: {late}"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_short(name):
    lines = len((PACKAGE / f"{name}.py").read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}.py has {lines} lines; split it by job"

"""The library's floor plan, read from the source with `ast` (nothing is imported): the layers import downwards
only (errors and paths < core < runs < analysis < report < the command line and notebook helpers), no import
cycle, and no library import inside a function unless a comment on its line says why."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cifar_utils"
LAYERS = ["base", "core", "runs", "analysis", "report", "top"]  # a module may import its own layer and those left of it
BASE = {"errors", "paths"}  # what every layer may import: the exceptions and where things are
# Imported inside a function on purpose: heavy, and needed only by one rarely taken path.
LAZY_THIRD_PARTY = {
    "torch",
    "torchvision.datasets",
    "seaborn",
    "papermill",
    "papermill.exceptions",
    "nbconvert",
    "scipy",
}


def modules(package: Path = PACKAGE) -> dict[str, ast.Module]:
    """{dotted name under the package: parsed source} for every module, packages' __init__ as the package."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = ast.parse(path.read_text(), filename=str(path))
    return found


def layer(name: str) -> str:
    first = name.split(".")[0] if name else "__init__"
    if first in LAYERS:
        return first
    return "base" if first in BASE else "top"


def _targets(name: str, node: ast.AST, known: set[str], is_package: bool) -> list[str]:
    """The library modules an import statement names, as dotted names under the package."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            here = name.split(".") if is_package else name.split(".")[:-1]
            base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
            stem = [p for p in [*base, *(node.module or "").split(".")] if p]
        elif (node.module or "").split(".")[0] == PACKAGE.name:
            stem = node.module.split(".")[1:]
        else:
            return []
        prefix = ".".join(stem)
        named = [f"{prefix}.{a.name}" if prefix else a.name for a in node.names]
        return [n for n in named if n in known] or ([prefix] if prefix in known else [])
    if isinstance(node, ast.Import):
        return [".".join(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == PACKAGE.name]
    return []


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(package)
    packages = {n for n in mods if (package / n.replace(".", "/") / "__init__.py").is_file()} | {""}
    return {
        name: {t for node in ast.walk(tree) for t in _targets(name, node, set(mods), name in packages) if t != name}
        for name, tree in mods.items()
    }


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a higher layer, as 'core.plots -> analysis.stats (core imports analysis)'."""
    return sorted(
        f"{src} -> {dst} ({layer(src)} imports {layer(dst)})"
        for src, dsts in graph.items()
        for dst in dsts
        if LAYERS.index(layer(dst)) > LAYERS.index(layer(src)) and src != ""
    )


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def late_imports(tree: ast.Module, source: str) -> list[str]:
    """Imports inside functions: library ones without a comment on their line, third-party ones not known heavy."""
    lines = source.splitlines()
    late = []
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(func):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            explained = "#" in lines[node.lineno - 1]
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE.name)):
                if not explained:
                    names = ", ".join(a.name for a in node.names)
                    where = f"{'.' * node.level}{node.module or ''}"
                    late.append(f"line {node.lineno}: from {where} import {names} (no comment says why)")
            elif isinstance(node, ast.ImportFrom) and node.module not in LAZY_THIRD_PARTY and not explained:
                late.append(f"line {node.lineno}: from {node.module}")
            elif (
                isinstance(node, ast.Import)
                and not explained
                and any(a.name not in LAZY_THIRD_PARTY for a in node.names)
            ):
                late.append(f"line {node.lineno}: import {', '.join(a.name for a in node.names)}")
    return late


def test_the_layers_import_downwards_only():
    assert upward_imports(import_graph()) == []


def test_the_import_graph_has_no_cycle():
    found = cycle(import_graph())
    assert found is None, " -> ".join(found)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_are_at_the_top_unless_a_comment_says_why(path):
    """An import inside a function is how a cycle or an upward import hides."""
    source = path.read_text()
    assert late_imports(ast.parse(source), source) == []


def test_every_layer_is_a_package_that_says_what_it_holds():
    for name in LAYERS[1:-1]:
        init = PACKAGE / name / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"{name}/ needs a docstring"


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE.name
    for rel, text in {**{f"{p}/__init__.py": "" for p in ("core", "runs", "analysis", "report")}, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_layer_check_catches_a_core_module_importing_analysis(tmp_path):
    root = _tree(
        tmp_path,
        {
            "analysis/stats.py": "from ..core import data\n",
            "core/data.py": "from ..errors import CifarError\n",
            "core/plots.py": "from ..analysis.stats import summarize\n",
            "errors.py": "",
        },
    )
    assert upward_imports(import_graph(root)) == ["core.plots -> analysis.stats (core imports analysis)"]


def test_the_layer_check_catches_absolute_and_same_package_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "runs/training.py": f"from {PACKAGE.name}.report import runner\nfrom . import folder\n",
            "runs/folder.py": "",
            "report/runner.py": "",
        },
    )
    assert upward_imports(import_graph(root)) == ["runs.training -> report.runner (runs imports report)"]


def test_the_cycle_finder_finds_one():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_a_late_library_import_needs_a_comment():
    source = "def f():\n    from . import x\n\ndef g():\n    from . import y  # only this rare path needs it\n"
    assert late_imports(ast.parse(source), source) == ["line 2: from . import x (no comment says why)"]

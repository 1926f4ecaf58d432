"""Every environment variable the project reads is named once, in paths.ENVIRONMENT, with what it does and who
reads it: the library reads none that the table lacks, spells none out instead of using paths' constant, and
the table lists none that nothing uses. The library is read from its source with `ast`, as in test_layers.py."""

import ast
import re
from pathlib import Path

from cifar_utils import paths

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cifar_utils"
CONSTANTS = {name: value for name, value in vars(paths).items() if name.endswith("_ENV") and isinstance(value, str)}
# Where else the project reads or sets a variable: its tests, nbval's conftest and the CI script.
ELSEWHERE = [p for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name] + [
    ROOT / "notebooks" / "conftest.py",
    ROOT / ".ci" / "run",
]


def _sources() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(PACKAGE)): ast.parse(path.read_text(), filename=str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _environment_keys(tree: ast.Module) -> list[ast.expr]:
    """The key of every access to the environment: os.environ[k], os.environ.get/pop/setdefault(k), k in
    os.environ, os.environ.update({k: ...}) or update(k=...), os.getenv(k), os.putenv(k, ...)."""
    keys = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            keys.append(node.slice)
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            keys.append(node.left)
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id
            if isinstance(func, ast.Attribute) and _is_environ(func.value):
                if name in ("get", "pop", "setdefault") and node.args:
                    keys.append(node.args[0])
                elif name == "update":
                    keys += [k for arg in node.args if isinstance(arg, ast.Dict) for k in arg.keys if k is not None]
                    keys += [ast.Constant(kw.arg, lineno=node.lineno) for kw in node.keywords if kw.arg]
            elif name in ("getenv", "putenv", "unsetenv") and node.args:
                keys.append(node.args[0])
    return keys


def _paths_aliases(tree: ast.Module) -> dict[str, str]:
    """{name in the module: paths' constant} for `from ...paths import X [as Y]`."""
    return {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "paths"
        for alias in node.names
    }


def _variable(key: ast.expr, aliases: dict[str, str]) -> str | None:
    """The variable a key names: a string literal's text, or the value of paths' constant it refers to (directly,
    imported under another name, or through a module that imported it); None for a key computed at run time."""
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return key.value
    name = key.id if isinstance(key, ast.Name) else key.attr if isinstance(key, ast.Attribute) else None
    return CONSTANTS.get(aliases.get(name, name))


def test_the_table_names_every_constant_once_with_one_line_each():
    assert sorted(CONSTANTS.values()) == sorted(set(CONSTANTS.values())), "two constants name one variable"
    assert set(CONSTANTS.values()) == set(paths.ENVIRONMENT), "a constant without a line in ENVIRONMENT, or back"
    for name, meaning in paths.ENVIRONMENT.items():
        assert meaning.strip() and "\n" not in meaning and ";" in meaning, f"${name}: what it does; who reads it"


def test_the_library_reads_no_variable_the_table_lacks():
    unlisted = [
        f"cifar_utils/{module}:{key.lineno} reads ${variable}"
        for module, tree in _sources().items()
        for key in _environment_keys(tree)
        if (variable := _variable(key, _paths_aliases(tree))) is not None and variable not in paths.ENVIRONMENT
    ]
    assert not unlisted, f"add them to paths.ENVIRONMENT (a constant, what it does, who reads it): {unlisted}"


def test_the_library_spells_no_variable_out():
    spelt = [
        f"cifar_utils/{module}:{node.lineno} writes {node.value!r}; use paths.{_constant(node.value)}"
        for module, tree in _sources().items()
        if module != "paths.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in paths.ENVIRONMENT
    ]
    assert not spelt, spelt


def _constant(variable: str) -> str:
    return next(name for name, value in CONSTANTS.items() if value == variable)


def test_every_listed_variable_is_used_somewhere():
    used = set()
    for module, tree in _sources().items():
        declared = set()
        if module == "paths.py":  # its declarations are no use: the constants and the table's keys
            table = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ENVIRONMENT")
            declared = {id(key) for key in table.value.keys}
        aliases = _paths_aliases(tree)
        used |= {
            variable
            for node in ast.walk(tree)
            if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(getattr(node, "ctx", None), ast.Load)
            if id(node) not in declared and (variable := _variable(node, aliases)) is not None
        }
    text = "\n".join(path.read_text() for path in ELSEWHERE)
    used |= {v for c, v in CONSTANTS.items() if re.search(rf"\b({re.escape(v)}|{c})\b", text)}
    assert not set(paths.ENVIRONMENT) - used, f"listed, but nothing reads or sets them: {set(paths.ENVIRONMENT) - used}"

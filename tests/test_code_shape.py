"""The shape of the code, checked on its syntax trees: small modules, no private reach-ins.

- No source module of the package (livegen/, kernels/, models/, training/) is over
  MAX_LINES lines.
- No module (package, tests, benchmarks) reads another object's private attribute: `x._name`
  is allowed only on self and cls (dunders are not private).
- No module imports a `_private` name from another module.

- No module of the package sends a bare tuple across a process or thread boundary
  (`x.send((...))`, `x.put((...))`): what crosses one is a typed message (livegen/messages.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ("livegen", "kernels", "models", "training")
CHECKED = (*PACKAGE, "tests", "benchmarks")
MAX_LINES = 450

# A documented public function whose name starts with an underscore.
PUBLIC_UNDERSCORE = {"os._exit"}


def sources(folders: tuple[str, ...]) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def private(attribute: str) -> bool:
    return attribute.startswith("_") and not (
        attribute.startswith("__") and attribute.endswith("__")
    )


def reach_ins(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every `x._name` on something other than self or cls."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not private(node.attr):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        text = ast.unparse(node)
        if text not in PUBLIC_UNDERSCORE:
            found.append((node.lineno, text))
    return found


def private_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, "module.name") of every `from module import _name`."""
    return [
        (node.lineno, f"{node.module}.{alias.name}")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for alias in node.names
        if private(alias.name)
    ]


def tuple_sends(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, "x.send") of every call of a send or put method with a tuple literal argument."""
    return [
        (node.lineno, ast.unparse(node.func))
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("send", "put", "put_nowait", "tell")
        and any(isinstance(arg, ast.Tuple) for arg in node.args)
    ]


def test_no_package_module_sends_a_bare_tuple() -> None:
    found = []
    for path in sources(PACKAGE):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{name(path)}:{line}: {text}" for line, text in tuple_sends(tree)]
    assert not found, "tuples sent instead of typed messages:\n" + "\n".join(found)


def test_no_package_module_is_over_the_line_limit() -> None:
    long = {}
    for path in sources(PACKAGE):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            long[name(path)] = lines
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("check", [reach_ins, private_imports], ids=["attributes", "imports"])
def test_no_module_reads_another_ones_private_names(check) -> None:  # noqa: ANN001
    found = []
    for path in sources(CHECKED):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += [f"{name(path)}:{line}: {text}" for line, text in check(tree)]
    assert not found, "private names read from outside:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for() -> None:
    tree = ast.parse(
        "from a import _hidden, shown\nself._ok, cls._ok, x.__dict__\nother._bad\nself.child._bad\n"
    )
    assert [text for _, text in reach_ins(tree)] == ["other._bad", "self.child._bad"]
    assert [text for _, text in private_imports(tree)] == ["a._hidden"]
    sends = ast.parse("conn.send(('player', 1))\nconn.send(Player(1))\nq.put((1, 2))\n")
    assert [text for _, text in tuple_sends(sends)] == ["conn.send", "q.put"]

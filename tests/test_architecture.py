"""The tree tells the truth: no empty packages, no test fixture in the installed package."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import popkeep

SRC = Path(popkeep.__file__).resolve().parent


def _has_code(init: Path) -> bool:
    """Whether a package's ``__init__.py`` holds more than a docstring."""
    body = ast.parse(init.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
               for node in body)  # fmt: skip


def test_every_package_has_a_module() -> None:
    empty = [
        init.parent.relative_to(SRC).as_posix()
        for init in SRC.rglob("__init__.py")
        if not _has_code(init)
        and not [p for p in init.parent.iterdir() if p.suffix == ".py" and p != init]
        and not [p for p in init.parent.iterdir() if (p / "__init__.py").is_file()]
    ]
    assert empty == []


def test_the_dovecot_fixture_is_not_installed() -> None:
    assert importlib.util.find_spec("popkeep.testing.dovecot") is None
    assert (Path(__file__).parent / "fixtures" / "dovecot.py").is_file()


#: SQL as this code base writes it (upper-case keywords), not prose.
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX)|PRAGMA\s+\w+)\b",
    re.DOTALL,
)


def test_no_sql_outside_the_store() -> None:
    """The store owns every query (issue 15 item 3): a string that reads like SQL
    anywhere else in the package is a second, untested path to the database."""
    found = []
    for module in sorted(SRC.rglob("*.py")):
        if module.relative_to(SRC).parts[0] == "state":
            continue
        tree = ast.parse(module.read_text(encoding="utf-8"))
        prose = {id(doc) for doc in _docstrings(tree)}
        found += [
            f"{module.relative_to(SRC)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in prose and _SQL.search(node.value)
        ]  # fmt: skip
    assert found == []


def _docstrings(tree: ast.Module) -> list[ast.expr]:
    owners = [tree, *(n for n in ast.walk(tree) if isinstance(
        n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef))]  # fmt: skip
    return [
        owner.body[0].value for owner in owners
        if owner.body and isinstance(owner.body[0], ast.Expr)
        and isinstance(owner.body[0].value, ast.Constant)
    ]  # fmt: skip

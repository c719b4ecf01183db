"""The tree tells the truth: no empty packages, no test fixture in the installed package."""

from __future__ import annotations

import ast
import importlib.util
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

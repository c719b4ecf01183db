"""The tree tells the truth: no empty packages, no test fixture in the installed package."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

import popkeep
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from .integration.helpers import server_config

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


# -- the import-linter contracts fail when crossed ------------------------------------

ROOT = SRC.parents[1]

#: contract name → (module of the copy, the import injected into it, the import
#: lint-imports must then report). One deliberate violation per contract; the
#: issue's examples among them (imapclient, sqlite3, popkeep.testing in
#: collector/job.py; socket in planner/report.py).
VIOLATIONS = {
    "Layers point downward only":
        ("state/base.py", "import popkeep.collector", "popkeep.state.base -> popkeep.collector"),
    "The POP3 codec, listing parsers and retention import no I/O":
        ("retention.py", "import os", "popkeep.retention -> os"),
    "The planner does no network, database, process or thread I/O":
        ("planner/report.py", "import socket", "popkeep.planner.report -> socket"),
    "IMAPClient only in the IMAP sink":
        ("collector/job.py", "import imapclient", "popkeep.collector.job -> imapclient"),
    "Google libraries only in the Google token provider":
        ("app.py", "import google.auth", "popkeep.app -> google"),
    "msal only in the Microsoft token provider":
        ("oauth/store.py", "import msal", "popkeep.oauth.store -> msal"),
    "keyring only in the keystore":
        ("config/secrets.py", "import keyring", "popkeep.config.secrets -> keyring"),
    "click only in the command line":
        ("scheduler.py", "import click", "popkeep.scheduler -> click"),
    "matplotlib only in the planner's plot":
        ("cli/render.py", "import matplotlib", "popkeep.cli.render -> matplotlib"),
    "Starlette and uvicorn only in the status API":
        ("service/control.py", "import uvicorn", "popkeep.service.control -> uvicorn"),
    "Jinja2 only in the dashboard":
        ("service/pages.py", "import jinja2", "popkeep.service.pages -> jinja2"),
    "prometheus-client only in /metrics":
        ("service/web.py", "import prometheus_client",
         "popkeep.service.web -> prometheus_client"),
    "sqlite3 only in the SQLite store":
        ("collector/job.py", "import sqlite3", "popkeep.collector.job -> sqlite3"),
    "popkeep.testing only from the demo":
        ("collector/job.py", "import popkeep.testing", "popkeep.collector.job -> popkeep.testing"),
    "The loopless stream only at the cron edge":
        ("sources/pop3.py", "import popkeep.transport.loopless",
         "popkeep.sources.pop3 -> popkeep.transport.loopless"),
    "Only app names concrete classes":
        ("scheduler.py", "import popkeep.state.sqlite",
         "popkeep.scheduler -> popkeep.state.sqlite"),
}  # fmt: skip


def _contracts() -> list[dict[str, Any]]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        contracts: list[dict[str, Any]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return contracts


def _contract_names() -> list[str]:
    return [c["name"] for c in _contracts()]


def test_the_testing_contract_covers_every_other_module() -> None:
    """import-linter skips a source that contains the forbidden module (``popkeep``
    contains ``popkeep.testing``), so that contract lists every top-level module."""
    (contract,) = [c for c in _contracts() if c["name"] == "popkeep.testing only from the demo"]
    top = {f"popkeep.{p.stem if p.suffix == '.py' else p.name}" for p in SRC.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert sorted(contract["source_modules"]) == sorted(top - {"popkeep.testing"})


def test_the_loopless_contract_covers_every_other_module() -> None:
    """Like the testing contract: every top-level module but popkeep.transport, and every
    module of popkeep.transport but loopless itself."""
    (contract,) = [c for c in _contracts()
                   if c["name"] == "The loopless stream only at the cron edge"]  # fmt: skip
    top = {f"popkeep.{p.stem if p.suffix == '.py' else p.name}" for p in SRC.iterdir()
           if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    transport = {f"popkeep.transport.{p.stem}" for p in (SRC / "transport").glob("*.py")
                 if p.stem != "__init__"}  # fmt: skip
    expected = (top - {"popkeep.transport"}) | (transport - {"popkeep.transport.loopless"})
    assert sorted(contract["source_modules"]) == sorted(expected)


@pytest.fixture(scope="module")
def crossed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """lint-imports over a copy of the tree with every violation injected at once:
    contract name → its section of the report ("KEPT" when it held)."""
    copy = tmp_path_factory.mktemp("crossed")
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copytree(SRC, copy / "src" / "popkeep", ignore=shutil.ignore_patterns("__pycache__"))
    for module, line, _ in VIOLATIONS.values():
        with (copy / "src" / "popkeep" / module).open("a", encoding="utf-8") as f:
            f.write(f"\n{line}  # injected by tests/test_architecture.py\n")
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(copy / "src")},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    report = done.stdout
    sections = {name: "KEPT" for name in _contract_names() if f"{name} KEPT" in report}
    for name in _contract_names():
        if f"{name} BROKEN" in report:
            start = report.index(f"\n{name}\n", report.index("Broken contracts"))
            following = [report.find(f"\n{o}\n", start + 1) for o in _contract_names()]
            end = min([i for i in following if i > start] or [len(report)])
            sections[name] = report[start:end]
    return sections


def test_every_contract_has_a_violation_to_prove_it() -> None:
    assert sorted(VIOLATIONS) == sorted(_contract_names())


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_each_contract_fails_when_crossed(crossed: dict[str, str], contract: str) -> None:
    module, line, reported = VIOLATIONS[contract]
    section = crossed.get(contract, "not in the report")
    assert reported in section, f"{line!r} in {module} did not break {contract!r}:\n{section}"


def test_docs_cited_by_the_code_exist() -> None:
    """A docstring or comment that points to ``docs/….md`` or a top-level ``X.md``
    points to a file in the repository (DESIGN.md once was cited and never shipped)."""
    cited = re.compile(r"\b((?:docs/|bench/)?[A-Za-z_-]+\.md)\b")
    missing = sorted(
        f"{module.relative_to(SRC)}: {name}"
        for module in SRC.rglob("*.py")
        for name in set(cited.findall(module.read_text(encoding="utf-8")))
        if not (ROOT / name).is_file() and not (ROOT / "docs" / name).is_file()
    )
    assert missing == []


# -- what a cron poll loads --------------------------------------------------------------

#: What ``popkeep fetch`` with nothing new must not load (a name and its submodules):
#: each costs every cron poll instructions for nothing (bench/README.md, "Round 11").
#: The other commands' (click, the planner) and the service's, with their libraries;
#: the optional adapters and the sinks the config does not name; and what only rarer
#: paths of a fetch need — asyncio (a pass with work), json (``--json``, JSON log
#: lines), secrets (a server without UIDL).
NOT_ON_THE_CRON_PATH = (
    "click", "popkeep.cli.group", "popkeep.cli.serve", "popkeep.planner",
    "popkeep.service", "starlette", "uvicorn", "prometheus_client", "jinja2",
    "popkeep.oauth", "msal", "google", "keyring", "imapclient", "matplotlib",
    "popkeep.sinks.imap", "popkeep.sinks.gmail", "popkeep.sinks.lmtp", "popkeep.sinks.mbox",
    "popkeep.sinks.mda", "popkeep.alerts.notify", "popkeep.testing",
    "asyncio", "json", "secrets",
)  # fmt: skip

_NOOP_FETCH = """
import sys
from popkeep.cli import main
code = main(["-c", sys.argv[1], "fetch"])
with open(sys.argv[2], "w") as f:
    f.write(" ".join([str(code), *sorted(sys.modules)]))
"""


def test_a_poll_with_nothing_new_loads_nothing_it_does_not_use(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts
) -> None:
    """A cron ``popkeep fetch`` of an account with nothing new, in a fresh interpreter
    (the path of ``popkeep -c CONFIG fetch``, without ending by ``os._exit``)."""
    config = server_config(tmp_path, server, certs)
    loaded = tmp_path / "modules"
    for _ in range(2):  # the first poll collects; the second has nothing new
        subprocess.run([sys.executable, "-c", _NOOP_FETCH, str(config), str(loaded)],
                       capture_output=True, timeout=60, check=True)  # fmt: skip
    code, *modules = loaded.read_text().split()
    assert code == "0"
    assert "popkeep.sinks.maildir" in modules  # (the poll did run)
    assert [m for m in modules
            if any(m == n or m.startswith(n + ".") for n in NOT_ON_THE_CRON_PATH)] == []


# -- what a cron poll builds ---------------------------------------------------------------

#: The modules whose NamedTuples every ``popkeep fetch`` builds as it loads, written
#: without ``from __future__ import annotations``: ``typing.NamedTuple`` turns each
#: string annotation into a ``ForwardRef`` by compiling it (≈ 50,000 instructions a
#: field; these modules' 190 fields cost a no-op poll ≈ 10 M of its 275 M,
#: bench/README.md "Round 12a"). ``app`` and the codecs keep theirs (names imported
#: only for type checking; few fields).
EVALUATED_RECORDS = (
    "popkeep.model", "popkeep.config.schema", "popkeep.state.base", "popkeep.collector.job",
    "popkeep.sources.base", "popkeep.sources.pop3", "popkeep.transport.base",
    "popkeep.sinks.base", "popkeep.retention", "popkeep.cli.quick.argv",
)  # fmt: skip


@pytest.mark.parametrize("name", EVALUATED_RECORDS)
def test_the_records_a_poll_builds_compile_no_annotation(name: str) -> None:
    module = importlib.import_module(name)
    records = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, tuple)
               and hasattr(value, "_fields") and value.__module__ == name]  # fmt: skip
    assert records, f"{name} defines no NamedTuple: take it off EVALUATED_RECORDS"
    compiled = [f"{record.__name__}.{field}" for record in records
                for field, hint in record.__annotations__.items()
                if isinstance(hint, typing.ForwardRef)]  # fmt: skip
    assert compiled == []

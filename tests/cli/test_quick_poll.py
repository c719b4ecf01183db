"""The cron edge (cli/quick/) holds every start-up trick and drives the one pass; nothing
below it knows."""

from __future__ import annotations

import ast
import asyncio
from datetime import timedelta
from pathlib import Path

import popkeep
from popkeep.cli.quick import poll as quickpoll
from popkeep.clock import SystemClock
from popkeep.collector import AccountResult, Collector
from popkeep.model import RetentionPolicy
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.sqlite import SQLiteStore

from ..test_sources import FolderSource, _message, _pass

SRC = Path(popkeep.__file__).parent
#: what must not know the fast path: one pass, one way to run it
BELOW = ("app.py", "scheduler.py", "collector", "sources", "transport", "sinks", "state")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _drives_by_hand(path: Path) -> bool:
    """``x.__await__()`` or ``x.send(None)``: stepping a coroutine without a loop."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "__await__":
                return True
            if node.func.attr == "send" and [ast.dump(a) for a in node.args] == [
                ast.dump(ast.Constant(None))
            ]:
                return True
    return False


def test_only_the_fast_path_drives_a_pass_without_a_loop() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert [p.relative_to(SRC).as_posix() for p in modules if _drives_by_hand(p)] == [
        "cli/quick/poll.py"
    ]
    for path in modules:
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(BELOW):
            assert not any(m.startswith("popkeep.cli") for m in _imports(path)), rel


def _tricks(path: Path) -> set[str]:
    """The start-up tricks ``path`` uses: ``gc.disable``/``gc.freeze``, ``os._exit``, and
    a function named like the click-free recogniser (``parse_fast``, ``run_fast``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            name = f"{node.value.id}.{node.attr}"
            if name in ("gc.disable", "gc.freeze", "os._exit"):
                found.add(name)
        elif isinstance(node, ast.FunctionDef) and node.name in ("parse_fast", "run_fast"):
            found.add(node.name)
    return found


def test_start_up_tricks_live_only_at_the_cron_edge() -> None:
    """The argv recogniser and the GC/``os._exit`` tricks are in cli/quick/, nowhere
    else; ``popkeep.cli`` itself is a plain entry point."""
    used = {p.relative_to(SRC).as_posix(): _tricks(p) for p in sorted(SRC.rglob("*.py"))}
    assert {rel: t for rel, t in used.items() if t and not rel.startswith("cli/quick/")} == {}
    assert set().union(*used.values()) == {
        "gc.disable", "gc.freeze", "os._exit", "parse_fast", "run_fast"}
    assert "gc" not in _imports(SRC / "cli" / "__init__.py")


def test_the_collector_has_one_pass() -> None:
    assert [name for name in vars(Collector) if not name.startswith("_")] == ["run"]


def test_a_pass_with_nothing_to_do_ends_without_a_loop_and_one_with_work_goes_on_in_one(
    tmp_path: Path,
) -> None:
    source = FolderSource({"7/1": _message(1)})
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        collector = Collector(AsyncStore(store), SystemClock())
        policy = RetentionPolicy(delete_after=timedelta(0))
        begun = quickpoll._begin(collector.run(_pass(tmp_path, source, policy)))
        assert isinstance(begun, quickpoll._Suspended)  # work: stopped before the sinks
        assert [c[0] for c in source.calls] == ["list"]
        (result,) = asyncio.run(quickpoll._finish_all([begun]))
        assert result.error is None and result.summary.delivered == 1
        assert result.summary.deleted == 1
        assert [c[0] for c in source.calls] == ["list", "describe", "retrieve", "delete",
                                                "commit"]  # one session throughout

        source.calls.clear()
        idle = quickpoll._begin(collector.run(_pass(tmp_path, source, policy)))
        assert isinstance(idle, AccountResult) and idle.error is None
        assert source.calls == [("list", ()), ("commit", ())]
    finally:
        store.close()

"""AsyncStore: the one way code inside an event loop calls the store (state/asyncstore.py)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from popkeep.errors import StateError
from popkeep.model import Receipt, RunSummary
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.base import Delivered, StateStore
from popkeep.state.sqlite import SQLiteStore

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
TIMEOUT = 10.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore.open(tmp_path / "state.db")
    yield s
    s.close()


class Watched:
    """A store whose record_run notes the thread it ran on and can be held up."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.threads: list[int] = []
        self.order: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def record_run(self, summary: RunSummary) -> None:
        self.threads.append(threading.get_ident())
        self.entered.set()
        assert self.release.wait(TIMEOUT)
        self.order.append(summary.account)
        self.store.record_run(summary)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _run(account: str) -> RunSummary:
    return RunSummary(account, T0, T0, "ok")


def test_every_store_method_has_its_awaitable_twin() -> None:
    """The facade cannot drift from the protocol: each query and write is there, async,
    with the same parameters (lock is taken before any loop; close is the owner's; a
    stream is iterated inside AsyncStore.run, on the store's thread)."""
    wanted = {n for n, _ in inspect.getmembers(StateStore, inspect.isfunction)
              if not n.startswith("_")} - {"lock", "close", "delivered_oldest_first"}  # fmt: skip
    for name in sorted(wanted):
        twin = getattr(AsyncStore, name, None)
        assert twin is not None and inspect.iscoroutinefunction(twin), name
        assert list(inspect.signature(twin).parameters) == list(
            inspect.signature(getattr(StateStore, name)).parameters
        ), name


def test_calls_run_in_order_on_one_thread_off_the_loop(store: SQLiteStore) -> None:
    watched = Watched(store)
    facade = AsyncStore(watched)  # type: ignore[arg-type]

    async def main() -> int:
        await asyncio.gather(*(facade.record_run(_run(f"a{i}")) for i in range(8)))
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(main())
    finally:
        facade.close()
    assert watched.order == [f"a{i}" for i in range(8)]  # the order the calls were made
    assert len(set(watched.threads)) == 1  # one dedicated thread
    assert loop_thread not in watched.threads
    assert [r.account for r in store.runs()] == [f"a{i}" for i in range(8)][::-1]


def test_a_slow_call_does_not_stall_the_loop(store: SQLiteStore) -> None:
    """While the store waits (a commit's fsync, a server), the loop runs other work."""
    watched = Watched(store)
    watched.release.clear()
    facade = AsyncStore(watched)  # type: ignore[arg-type]

    async def other_work() -> None:
        await asyncio.to_thread(watched.entered.wait, TIMEOUT)  # the call has begun
        watched.release.set()  # only the loop can let it finish

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(facade.record_run(_run("a")), other_work()), TIMEOUT)

    try:
        asyncio.run(main())
    finally:
        facade.close()
    assert watched.order == ["a"]


def test_a_cancelled_caller_does_not_cancel_the_write(store: SQLiteStore) -> None:
    watched = Watched(store)
    watched.release.clear()
    facade = AsyncStore(watched)  # type: ignore[arg-type]

    async def main() -> None:
        writing = asyncio.ensure_future(facade.record_run(_run("a")))
        await asyncio.to_thread(watched.entered.wait, TIMEOUT)
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing
        watched.release.set()
        assert await facade.accounts() == ["a"]  # the next call starts after it ended

    try:
        asyncio.run(main())
    finally:
        facade.close()


def test_errors_reach_the_awaiting_caller(store: SQLiteStore) -> None:
    facade = AsyncStore(store)

    async def main() -> None:
        with pytest.raises(StateError, match="naive"):
            naive = datetime(2026, 1, 1)
            delivered = [Delivered("u", "0" * 64, 1, (Receipt("m", "r"),))]
            await facade.record_delivered("a", delivered, ["m"], naive)
        await facade.mark_gone("a", iter(["u"]), T0)  # iterables are read on the caller's side
        assert await facade.messages("a") == {}

    try:
        asyncio.run(main())
    finally:
        facade.close()


def test_without_a_loop_a_call_runs_at_once_in_the_callers_thread(store: SQLiteStore) -> None:
    """A pass driven by hand (cli.quick.poll) awaits the facade with no loop: each call
    completes on the first step, on the caller's thread, and no worker thread starts."""
    watched = Watched(store)
    facade = AsyncStore(watched)  # type: ignore[arg-type]
    step = facade.record_run(_run("a"))
    with pytest.raises(StopIteration):
        step.send(None)
    assert watched.threads == [threading.get_ident()]
    assert facade._thread is None
    facade.close()
    assert [r.account for r in store.runs()] == ["a"]


def test_a_poll_without_a_loop_never_imports_asyncio(tmp_path: Path) -> None:
    """The cron fast path keeps its measured start-up: the facade loads asyncio and a
    thread pool only when a call is made inside a loop."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from popkeep.state.asyncstore import AsyncStore\n"
        "from popkeep.state.sqlite import SQLiteStore\n"
        "facade = AsyncStore(SQLiteStore.open(Path(sys.argv[1])))\n"
        "step = facade.accounts()\n"
        "try:\n"
        "    step.send(None)\n"
        "except StopIteration as done:\n"
        "    print(done.value, sorted(m for m in ('asyncio', 'concurrent.futures')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "state.db")],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "[] []"


def test_run_takes_a_function_of_several_calls_to_the_stores_thread(store: SQLiteStore) -> None:
    """AsyncStore.run: calls that belong together (read, decide, write) run as one,
    on the store's thread, in order with the single calls around them."""
    watched = Watched(store)
    facade = AsyncStore(watched)  # type: ignore[arg-type]

    def together(name: str) -> int:
        watched.record_run(_run(name))
        return len(watched.store.runs())

    async def main() -> list[object]:
        return await asyncio.gather(
            facade.record_run(_run("first")), facade.run(together, "second"),
            facade.record_run(_run("third")),
        )  # fmt: skip

    try:
        results = asyncio.run(main())
    finally:
        facade.close()
    assert results[1] == 2 and watched.order == ["first", "second", "third"]
    assert len(set(watched.threads)) == 1 and threading.get_ident() not in watched.threads

"""The collector calls the store the one documented way (state/asyncstore.py): inside
a running event loop no store call runs on the loop's thread; driven without a loop
(the cron edge) the same pass still never suspends for the store."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli.quick import poll as quick
from popkeep.clock import SystemClock
from popkeep.collector import AccountResult, Collector
from popkeep.model import RetentionPolicy
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.sqlite import SQLiteStore

from .test_sources import FolderSource, _message, _pass


class Watched:
    """A store noting, for each call, the method's name and the thread it ran on."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method

        def noted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        return noted


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Watched]:
    store = SQLiteStore.open(tmp_path / "state.db")
    yield Watched(store)
    store.close()


def _in_a_loop(run: Callable[[], Any]) -> tuple[AccountResult, int]:
    """``run()``'s pass awaited inside ``asyncio.run``, and the loop's thread."""

    async def main() -> tuple[AccountResult, int]:
        return await run(), threading.get_ident()

    result: tuple[AccountResult, int] = asyncio.run(main())
    return result


def test_no_store_call_runs_on_the_loop_thread(tmp_path: Path, watched: Watched) -> None:
    """A pass that delivers, refuses a DELE, deletes, and then sees a message gone:
    every query and write it makes runs off the loop (a commit's fsync would stall
    every other account's session meanwhile)."""
    box = {f"7/{n}": _message(n) for n in (3, 10, 200)}
    source = FolderSource(box, refuse=["7/10"])
    facade = AsyncStore(watched)  # type: ignore[arg-type]
    collector = Collector(facade, SystemClock())
    delete_now = RetentionPolicy(delete_after=timedelta(0))
    try:
        first, loop = _in_a_loop(lambda: collector.run(_pass(tmp_path, source, delete_now)))
        assert first.error is None and first.summary.delivered == 3
        assert first.summary.deleted == 2
        del box["7/10"]  # deleted elsewhere: GONE on the next pass
        again, loop_again = _in_a_loop(lambda: collector.run(_pass(tmp_path, source, delete_now)))
        assert again.error is None and again.summary.gone == 1
    finally:
        facade.close()
    names = {name for name, _ in watched.calls}
    assert {"known_hashes", "journal", "record_delivered", "delivered_oldest_first",
            "mark_delete_pending",
            "revert_delete_pending", "mark_deleted", "mark_gone", "record_run",
            "refusals"} <= names, names
    on_loop = [name for name, thread in watched.calls if thread in (loop, loop_again)]
    assert on_loop == []


def test_without_a_loop_the_store_never_suspends_the_pass(
    tmp_path: Path, watched: Watched
) -> None:
    """The cron edge drives a pass with nothing to do by hand: the store's awaits run
    at once in the caller's thread, so the pass ends without an event loop."""
    source = FolderSource({"a": _message(1)})
    facade = AsyncStore(watched)  # type: ignore[arg-type]
    collector = Collector(facade, SystemClock())
    policy = RetentionPolicy(delete_after=timedelta(days=30))
    try:
        asyncio.run(collector.run(_pass(tmp_path, source, policy)))  # delivered
        watched.calls.clear()
        idle = quick._begin(collector.run(_pass(tmp_path, source, policy)))
    finally:
        facade.close()
    assert isinstance(idle, AccountResult) and idle.error is None
    here = threading.get_ident()
    assert ("record_run", here) in watched.calls
    assert ("delivered_oldest_first", here) in watched.calls

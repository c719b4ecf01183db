"""The one way async code calls the (synchronous) state store.

Owns: :class:`AsyncStore`, an awaitable face of any
:class:`~popkeep.state.base.StateStore`. Inside a running event loop it runs
every call on **one dedicated worker thread**, in the order the calls were made.
Why a thread: a store call may wait on the disk (SQLite commits with
``synchronous=FULL``, an fsync each) or, for a networked store, on a server; run
on the loop it would stall every session of every account meanwhile. Why one
thread: calls keep their order (a journal before the receipts that clear it), a
store sees one caller at a time, and the thread starts with the first call that
needs it.

With no running loop (a pass driven by hand, ``popkeep.cli.quick.poll``) its
awaits never suspend: each call runs at once, in the caller's thread, the same
contract as the cron edge's TCP stream opened with no loop (``transport.loopless``). This module
imports neither asyncio nor a thread pool until a call inside a loop needs them,
so a cron poll that ends without a loop never loads them.

Must not: change what a call means. A cancelled ``await`` does not cancel the
call: a transaction that has begun completes (or fails) on the thread, and the
next call starts after it. The store's lock
(:meth:`~popkeep.state.base.AccountLocks.lock`) is taken before any loop, by ``app``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from popkeep.model import MessageState, RunSummary, StoredMessage
from popkeep.state.base import (
    AccountTotals,
    Alert,
    Collected,
    Delivered,
    DeliveredRecord,
    Intent,
    Refusal,
    StateStore,
)

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

P = ParamSpec("P")
T = TypeVar("T")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop, if any; no loop can run before asyncio is imported."""
    module = sys.modules.get("asyncio")
    if module is None:
        return None
    try:
        loop: asyncio.AbstractEventLoop = module.get_running_loop()
    except RuntimeError:
        return None
    return loop


class AsyncStore:
    """Every :class:`StateStore` query and write, awaitable; the store itself stays
    its owner's to close (:meth:`close` here only stops the thread)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._thread: ThreadPoolExecutor | None = None  #: started by the first call in a loop

    async def _call(self, method: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``method`` on the store's thread (at once when no loop runs); its
        exception is raised here."""
        loop = _running_loop()
        if loop is None:
            return method(*args, **kwargs)
        import asyncio

        if self._thread is None:
            from concurrent.futures import ThreadPoolExecutor

            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="popkeep-store")
        future = loop.run_in_executor(self._thread, functools.partial(method, *args, **kwargs))
        # shield: a cancelled caller leaves the call running to its end (see module doc).
        return await asyncio.shield(future)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a synchronous ``function`` that calls :attr:`store` several times (a
        read, a decision, a write that belong together) on the store's thread, in
        order with every other call, as if it were one call; at once with no loop."""
        return await self._call(function, *args, **kwargs)

    def close(self) -> None:
        """Wait for the calls already made, then stop the thread (if one started).
        Idempotent; the store stays open."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)

    # -- the StateStore protocol, method for method ------------------------------------

    async def messages(self, account: str) -> dict[str, StoredMessage]:
        return await self._call(self.store.messages, account)

    async def records(self, account: str, uids: Sequence[str]) -> dict[str, StoredMessage]:
        return await self._call(self.store.records, account, uids)

    # delivered_oldest_first streams: iterate it inside run(), on the store's thread.

    async def uids_by_state(self, account: str) -> dict[MessageState, list[str]]:
        return await self._call(self.store.uids_by_state, account)

    async def known_hashes(self, account: str, hashes: Sequence[str]) -> set[str]:
        return await self._call(self.store.known_hashes, account, hashes)

    async def find_by_hash(self, account: str, sha256: str) -> StoredMessage | None:
        return await self._call(self.store.find_by_hash, account, sha256)

    async def journal(self, intents: Sequence[Intent]) -> None:
        await self._call(self.store.journal, intents)

    async def pending_intents(self, account: str) -> list[Intent]:
        return await self._call(self.store.pending_intents, account)

    async def record_delivered(
        self, account: str, delivered: Sequence[Delivered], all_sinks: Sequence[str], now: datetime
    ) -> None:
        await self._call(self.store.record_delivered, account, delivered, all_sinks, now)

    async def record_refusals(self, account: str, refusals: Sequence[Refusal]) -> None:
        return await self._call(self.store.record_refusals, account, refusals)

    async def refusals(self, account: str) -> list[Refusal]:
        return await self._call(self.store.refusals, account)

    async def forget_refusals(self, account: str, uids: Sequence[str] = ()) -> int:
        return await self._call(self.store.forget_refusals, account, uids)

    async def adopt(
        self, account: str, uid: str, original: StoredMessage, size: int,
        listed_size: int | None = None,
    ) -> None:
        await self._call(self.store.adopt, account, uid, original, size, listed_size)

    async def mark_collected(
        self, account: str, collected: Sequence[Collected], sinks: Sequence[str],
        source: str, now: datetime,
    ) -> int:
        return await self._call(self.store.mark_collected, account, collected, sinks, source, now)

    async def live_octets(self, account: str) -> tuple[int, int]:
        return await self._call(self.store.live_octets, account)

    async def record_listed_sizes(
        self, account: str, sizes: Mapping[str, int], digests: Mapping[str, str] | None = None
    ) -> None:
        await self._call(self.store.record_listed_sizes, account, sizes, digests)

    async def retire(self, account: str, uids: Sequence[str], now: datetime) -> dict[str, str]:
        return await self._call(self.store.retire, account, uids, now)

    async def mark_delete_pending(self, account: str, uids: Iterable[str], now: datetime) -> None:
        await self._call(self.store.mark_delete_pending, account, list(uids), now)

    async def mark_deleted(self, account: str, uids: Iterable[str], now: datetime) -> None:
        await self._call(self.store.mark_deleted, account, list(uids), now)

    async def revert_delete_pending(self, account: str, uids: Iterable[str]) -> None:
        await self._call(self.store.revert_delete_pending, account, list(uids))

    async def mark_gone(self, account: str, uids: Iterable[str], now: datetime) -> None:
        await self._call(self.store.mark_gone, account, list(uids), now)

    async def record_run(self, summary: RunSummary) -> None:
        await self._call(self.store.record_run, summary)

    async def runs(self, account: str | None = None, limit: int = 50) -> list[RunSummary]:
        return await self._call(self.store.runs, account, limit)

    async def delivered_history(self, account: str | None = None) -> list[DeliveredRecord]:
        return await self._call(self.store.delivered_history, account)

    async def accounts(self) -> list[str]:
        return await self._call(self.store.accounts)

    async def account_totals(self, account: str) -> AccountTotals:
        return await self._call(self.store.account_totals, account)

    async def failing_since(self, account: str) -> datetime | None:
        return await self._call(self.store.failing_since, account)

    async def open_alerts(self, account: str) -> list[Alert]:
        return await self._call(self.store.open_alerts, account)

    async def recent_alerts(self, account: str, limit: int = 20) -> list[Alert]:
        return await self._call(self.store.recent_alerts, account, limit)

    async def raise_alert(self, alert: Alert) -> bool:
        return await self._call(self.store.raise_alert, alert)

    async def clear_alert(self, account: str, condition: str, now: datetime) -> bool:
        return await self._call(self.store.clear_alert, account, condition, now)

    async def alert_told(self, alert: Alert, cleared: bool, now: datetime) -> None:
        return await self._call(self.store.alert_told, alert, cleared, now)

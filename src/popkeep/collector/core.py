"""One collector pass over one account: list → diff → fetch → deliver → record → retain.

The fetch → deliver part lives in :mod:`.pipeline`; the records in :mod:`.job`.

There is one pass, :meth:`Collector.run`, for every caller: ``popkeep fetch``
and a long-running service alike. Up to the point where it has work to do, it
awaits only its source and uses no event-loop facility itself (the state is read
on a plain thread), and it yields once (a checkpoint) before opening the sinks.

Owns: the order of operations that keeps the promises of docs/guarantees.md:

- an intent is journaled before any sink makes a message visible, and unfinished
  intents are recovered (by asking the sinks) before anything is written again.
  A staging sink (Maildir) may write a message *invisibly* before that (staged:
  not durable, not findable, counting for nothing); the intents are journaled at
  the commit that makes a group durable and visible;
- a message is DELIVERED only when every sink of the account holds it durably;
- DELE is sent only for DELIVERED messages chosen by :func:`popkeep.retention.decide`,
  after every commit of this run is durable and recorded; deletions are believed
  only when the source commits them (POP3: QUIT returns +OK);
- a message that vanished from the server is GONE, not an error; content seen
  again under a new UIDL is adopted, not delivered twice.

Must not: name concrete sources, sinks or stores (``app`` wires them), or format output.
"""

from __future__ import annotations

import functools
import logging
import threading
import types
from collections.abc import Awaitable, Callable, Generator, Iterator, Set
from datetime import datetime
from itertools import chain, filterfalse
from typing import TYPE_CHECKING

from popkeep import logs, retention
from popkeep.clock import Clock
from popkeep.collector.job import (
    AccountJob,
    AccountResult,
    PackedUids,
    ProgressCallback,
    RunState,
    groups,
    sink_names,
)
from popkeep.errors import PopkeepError, TransportError
from popkeep.model import MessageState, RunSummary, ServerStat, StoredMessage
from popkeep.sources.base import ListedMessage, SourceSession
from popkeep.state.asyncstore import AsyncStore

if TYPE_CHECKING:
    from popkeep.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

#: states of the uids on the server at the last run, as far as we know
_LIVE = frozenset({MessageState.SEEN, MessageState.DELIVERED})
#: state → uids, as the store reads them (RunState.know)
_Known = dict[MessageState, list[str]]


@types.coroutine
def _checkpoint() -> Generator[None, None, None]:
    """Give the event loop one turn (a bare ``yield``, like ``asyncio.sleep(0)``)."""
    yield


class Collector:
    """Runs passes; one instance may serve many accounts (sequentially or concurrently).

    Every store call from the pass goes through ``store`` (docs/architecture.md,
    "Calling the store from async code"): inside a running loop it runs on the
    store's thread, never on the loop; driven without a loop it runs at once. Only
    the state read on its own plain thread (:meth:`_read_state`,
    :meth:`_live_octets`) calls ``store.store`` directly.
    """

    def __init__(
        self, store: AsyncStore, clock: Clock, progress: ProgressCallback | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._progress = progress
        self._pipeline_made: Pipeline | None = None

    @property
    def _pipeline(self) -> Pipeline:
        if self._pipeline_made is None:  # imported when there is something to fetch
            from popkeep.collector.pipeline import Pipeline

            self._pipeline_made = Pipeline(self._store, self._clock, self._progress)
        return self._pipeline_made

    async def run(self, job: AccountJob) -> AccountResult:
        """One pass. Never raises a PopkeepError: it is returned in the result."""
        with logs.account(job.name):
            return await self._run(job)

    async def _run(self, job: AccountJob) -> AccountResult:
        started = self._clock.now()
        run = RunState(job)
        error: PopkeepError | None = None
        interval: float | None = None
        try:
            session = await self._connect(run)
            interval = session.login_interval
            try:
                listed, todo = await self._list(run, session)
                await self._deliver(run, session, listed, todo)
            finally:
                await session.close()
        except PopkeepError as exc:
            error = exc
        return await self._result(run, started, error, interval)

    async def _result(
        self, run: RunState, started: datetime, error: PopkeepError | None,
        interval: float | None = None,
    ) -> AccountResult:
        if error is not None:  # the caller reports it (popkeep fetch: one FAILED line)
            log.info("account %s: %s", run.job.name, error)
        summary = self._summary(run, started, error)
        await self._store.record_run(summary)
        return AccountResult(summary, error, run.warnings, interval)

    async def _deliver(
        self, run: RunState, session: SourceSession, listed: Set[str], todo: list[str]
    ) -> None:
        """Fetch ``todo``, deliver, retain, commit. Sinks are opened only when there is
        something to fetch or delete (a failed sink blocks every deletion)."""
        run.settle()
        doomed = await self._doomed(run, listed)
        if not todo and not doomed:  # nothing to fetch, nothing due for deletion
            await session.commit()
            return
        job = run.job
        # The other passes run meanwhile; and a caller driving this pass by hand
        # without a loop (cli.quick.poll) stops here and finishes it in one.
        await _checkpoint()
        await self._open_sinks(run)
        try:
            todo = await self._check_doomed(run, session, todo, doomed)
            del doomed  # _retain decides again, after the fetch
            run.settle()  # again, if _check_doomed retired some
            await self._fetch(run, session, todo)
            await self._retain(run, session, listed)
        finally:
            for sink in job.sinks:
                await sink.close()
        if run.failed_sinks:
            # The other sinks delivered and were recorded; this one is retried next run.
            # One error naming every failed sink: each failure is reported once, there.
            error = next(iter(run.failed_sinks.values()))
            raise type(error)("; ".join(f'sink "{n}": {e}' for n, e in run.failed_sinks.items()))

    async def _connect(self, run: RunState) -> SourceSession:
        """Connect and log in while a worker thread reads the account's state.

        Login, and the server opening a large mailbox (≈ 0.1 s for 20,000 messages
        on Dovecot), are round trips and server time; the reads need neither. A
        plain thread, not the loop's executor: the pass uses no loop facility
        before it has work (see the module docstring); the join waits only for
        whatever of the read outlasted the login.
        """
        got: list[tuple[frozenset[str], _Known]] = []
        failed: list[BaseException] = []

        def read() -> None:
            try:
                got.append(self._read_state(run.job.name))
                run.live_octets, run.unsized = self._live_octets(run.job.name)
            except BaseException as exc:  # re-raised below, in the pass
                failed.append(exc)

        reader = threading.Thread(target=read, name="popkeep-state", daemon=True)
        reader.start()
        try:
            session = await run.job.connect()
        finally:
            reader.join()
        if failed:
            await session.close()
            raise failed[0]
        run.pending_keys, known = got[0]
        run.know(known)
        return session

    def _read_state(self, account: str) -> tuple[frozenset[str], _Known]:
        """The account's state, read and indexed in a worker thread (see _connect): the
        synchronous store itself, called from no loop."""
        store = self._store.store
        pending = frozenset(i.key for i in store.pending_intents(account))
        return pending, store.uids_by_state(account)

    def _live_octets(self, account: str) -> tuple[int | None, int]:
        """(What STAT should say if the server holds exactly the live messages, as
        collected (see :meth:`_sizes_moved`), None when some lack a recorded size;
        how many lack one). Read in the worker thread of _connect, like
        :meth:`_read_state`."""
        total, unrecorded = self._store.store.live_octets(account)
        return (None if unrecorded else total), unrecorded

    async def _open_sinks(self, run: RunState) -> None:
        """Open every sink; one that fails is skipped this run (and blocks deletions).
        All failing ends the pass."""
        for sink in run.job.sinks:
            try:
                await sink.open()
            except PopkeepError as exc:  # reported in the pass's error (_deliver)
                log.info("account %s: sink %s: %s", run.job.name, sink.name, exc)
                run.failed_sinks[sink.name] = exc
        if len(run.failed_sinks) == len(run.job.sinks):
            name, error = next(iter(run.failed_sinks.items()))
            raise type(error)(f'sink "{name}": {error}')

    async def _list(self, run: RunState, session: SourceSession) -> tuple[Set[str], list[str]]:
        """List, settle what changed: (the keys listed, the keys to deliver).

        A message's key is its uid in the store."""
        listing = await session.list_mailbox()
        listed = listing.keys
        run.server_count, run.server_octets = listing.messages, listing.octets
        run.listed = len(listed)
        if listing.skipped:
            run.skipped += listing.skipped
            run.warnings.append(
                f"account {run.job.name}: {listing.skipped} entries of the server's listing "
                "are inconsistent (unparsable, a message number twice or beyond STAT's "
                "count, one unique-id for several messages); those messages were neither "
                "fetched nor deleted"
            )
        complete = not listing.skipped
        await self._reconcile(run, listed, complete)
        todo = self._todo(run, listed, complete)
        if run.unsized:
            await self._record_sizes(run, session, listed)
        elif complete and not todo and self._sizes_moved(run, listed):
            todo = await self._check_sizes(run, session, listed)
        return listed, todo

    async def _record_sizes(self, run: RunState, session: SourceSession, listed: Set[str]) -> None:
        """Live messages with no recorded LIST size (marked collected by ``popkeep
        import-state``, which knows only their UIDLs, or collected before popkeep
        recorded sizes): record the size LIST gives those listed now and, where none
        is recorded, their ``TOP n 0`` header digest, once (one LIST, or a few ``LIST
        n``, and a TOP each), before this pass's retention counts their octets
        (``retention``'s quota) and so that later polls can compare STAT's octets
        with the sum (:meth:`_sizes_moved`) and tell a message the server rewrote
        (``Status:``) from a new one (:meth:`_check_sizes`, :meth:`_check_doomed`).
        What is under their UIDL now is taken to be what was collected, as when they
        were marked."""
        account, recorded = run.job.name, 0
        # A group at a time (records, sizes, digests): no map of every record.
        for group in groups(filter(listed.__contains__, run.live_uids()), run.job.fetch_group):
            records = await self._store.records(account, group)
            unsized = [
                uid for uid in group
                if (m := records.get(uid)) is not None and m.listed_size is None
            ]
            if not unsized:  # counted before this poll's changes (see _reconcile)
                continue
            described = await session.describe(unsized, identify=True)
            await self._store.record_listed_sizes(
                account, {m.key: m.size for m in described},
                {m.key: m.identity for m in described if m.identity is not None},
            )
            recorded += len(described)
        if recorded:
            log.info("account %s: recorded LIST size and header digest of %d message(s) "
                     "collected without them", account, recorded)

    # -- diff -----------------------------------------------------------------------

    async def _reconcile(self, run: RunState, listed: Set[str], complete: bool = True) -> None:
        """Settle what changed on the server since the last run (message states:
        docs/architecture.md).

        ``listed``: the uids this session listed. Afterwards every live
        (SEEN or DELIVERED) uid is listed: those that vanished are GONE. Not when
        the listing is not ``complete`` (entries the server got wrong were left
        out): a message missing from it may still be there, so nothing is GONE.
        """
        account, now = run.job.name, self._clock.now()
        pending = run.by_state.get(MessageState.DELETE_PENDING, [])
        # A DELE whose QUIT reply we never saw: still listed means it did not happen.
        await self._store.revert_delete_pending(account, [u for u in pending if u in listed])
        if complete:
            await self._store.mark_deleted(account, [u for u in pending if u not in listed], now)
        # Filtered in C over the live uids only (no set of them, no Python loop per uid);
        # the GONE/DELETED history of years of polls costs nothing.
        vanished = sorted(filterfalse(listed.__contains__, run.live_uids())) if complete else []
        if vanished:
            log.info("account %s: %d messages gone (deleted elsewhere)", account, len(vanished))
            await self._store.mark_gone(account, vanished, now)
        run.gone = len(vanished)
        if pending or vanished:
            run.know(await self._store.uids_by_state(account))
            run.live_octets = None  # summed before these changes
        reappeared = self._reappeared(run, listed, complete)
        if reappeared:
            await self._retire(run, reappeared)

    @staticmethod
    def _reappeared(run: RunState, listed: Set[str], complete: bool = True) -> list[str]:
        """Listed uids the store knows as DELETED or GONE: the old message left the
        server, so the server gave its UIDL to a new one (RFC 1939 §7 allows that).

        Free on a poll where every listed uid is live (see :meth:`_todo`); otherwise
        the uids no longer live are filtered in C by the listing: no set of every
        known uid (issue 16 item 3). Not free when the listing is not ``complete``:
        then a live uid may be missing from it, so a listing as long as the live set
        may still hold a reused uid."""
        if complete and run.live == len(listed):
            return []
        dead = (uids for state, uids in run.by_state.items() if state not in _LIVE)
        return sorted(filter(listed.__contains__, chain.from_iterable(dead)))

    async def _retire(self, run: RunState, uids: list[str]) -> None:
        """``uids`` now name new messages: their old records move aside (the store's
        ``retire``: history and content hash kept) and the uids are unknown, so this
        pass fetches and delivers them, and never deletes or skips them on the old
        message's record. Reported as a warning of the run."""
        account = run.job.name
        await self._store.retire(account, uids, self._clock.now())
        log.warning(
            "account %s: the server reused the UIDL of %d message(s) collected before "
            "for new mail (RFC 1939 §7); fetching them as new messages", account, len(uids),
        )
        run.warnings.append(
            f"the server reused {len(uids)} UIDL(s) for new messages; fetched as new "
            "(docs/guarantees.md, sources: POP3)"
        )
        run.know(await self._store.uids_by_state(account))
        run.known = None

    @staticmethod
    def _sizes_moved(run: RunState, listed: Set[str]) -> bool:
        """On a poll listing exactly the live messages: does STAT's octet count differ
        from the sum of their sizes as LIST gave them when collected? Then some
        message's size changed under its UIDL (RFC 1939 §5: STAT counts the octets
        LIST counts). Costs nothing on the wire: STAT is sent anyway."""
        return (
            run.live_octets is not None
            and run.live == len(listed)
            and run.live_octets != run.server_octets
        )

    async def _check_sizes(
        self, run: RunState, session: SourceSession, listed: Set[str]
    ) -> list[str]:
        """STAT says some size changed (see :meth:`_sizes_moved`): LIST, and for each
        message whose size moved, ``TOP n 0``. A header digest as collected means the
        same message (a server adding ``Status:`` to a message it served): its new
        size is recorded, so the next poll adds up again. Anything else (no TOP: the
        size decides) is a new message under a reused UIDL: retired, and returned
        to be fetched. docs/guarantees.md, point 10."""
        account = run.job.name
        moved: list[str] = []
        for group in groups(listed, run.job.fetch_group):  # no map of every record
            records = await self._store.records(account, group)
            moved += [
                m.key for m in await session.describe(group)
                if (r := records.get(m.key)) is not None and r.listed_size != m.size
            ]
        if not moved:
            log.info("account %s: STAT's octets (%d) are not the sum of LIST's sizes "
                     "(%s)", account, run.server_octets, run.live_octets)
            return []
        changed: list[str] = []
        same: dict[str, int] = {}
        then = await self._store.records(account, moved)
        for message in await session.describe(moved, identify=True):
            digest = then[message.key].digest
            if digest is not None and message.identity == digest:
                same[message.key] = message.size
            else:
                changed.append(message.key)
        await self._store.record_listed_sizes(account, same)
        if changed:
            await self._retire(run, sorted(changed))
        return sorted(changed)

    @staticmethod
    def _todo(run: RunState, listed: Set[str], complete: bool = True) -> list[str]:
        """The listed uids that still need delivering, unknown ones and SEEN ones, in
        the listing's order (see :meth:`_fetch`)."""
        seen = run.by_state.get(MessageState.SEEN, ())
        if complete and run.live == len(listed):
            # Every live uid is listed (see _reconcile), so a listing as long as the
            # live set is that set: nothing unknown, only the SEEN ones are due.
            return list(seen)
        if not any(run.by_state.values()):
            return list(listed)  # a first collection: every uid, no set of them
        # Set differences in C: unknown uids, then the few SEEN ones. One set, of the
        # listing: none of every uid the store knows (issue 16 item 3).
        todo = set(listed)
        for uids in run.by_state.values():
            todo.difference_update(uids)
        todo.update(uid for uid in seen if uid in listed)
        return list(filter(todo.__contains__, listed))  # in C; the listing's order

    async def _fetch(self, run: RunState, session: SourceSession, todo: list[str]) -> None:
        """Describe and fetch ``todo`` in groups of ``fetch_group``, in the listing's
        order: what the pass holds per message to fetch (its description, the
        pipeline's maps) is one group's, not the mailbox's (issue 16 item 3)."""
        group = run.job.fetch_group
        run.total = len(todo)
        for start in range(0, len(todo), group):
            described = await self._select(run, session, todo[start : start + group])
            await self._pipeline.fetch(run, session, described)

    async def _select(
        self, run: RunState, session: SourceSession, todo: list[str]
    ) -> list[ListedMessage]:
        """``todo`` as the source describes it (in its order), minus the messages too
        large to take. Only they are described: a poll with nothing new asks nothing."""
        described = await session.describe(todo) if todo else []
        if len(described) < len(todo):
            missing = len(todo) - len(described)
            run.skipped += missing
            run.warnings.append(
                f"account {run.job.name}: the server's LIST does not tell the size of "
                f"{missing} message(s) consistently; left on the server, tried next run"
            )
        limit = run.job.max_message_size
        wanted: list[ListedMessage] = []
        run.total -= len(todo) - len(described)
        for message in described:
            if limit is not None and message.size > limit:
                run.total -= 1
                run.skipped += 1
                run.warnings.append(
                    f"message {message.key} ({message.size} octets) is larger than "
                    f"max_message_size ({limit}); left on the server"
                )
                continue
            wanted.append(message)
        return wanted

    # -- retention --------------------------------------------------------------------

    async def _retain(self, run: RunState, session: SourceSession, listed: Set[str]) -> None:
        """Delete what the policy chose, then commit; believe it only when the source
        confirms (POP3: QUIT +OK). ``listed``: the uids this session listed."""
        job = run.job
        if run.sink_failed or not (doomed := await self._doomed(run, listed)):
            await session.commit()
            return
        now = self._clock.now()
        refused: set[str] = set()
        try:
            # A group at a time: marked DELETE_PENDING (durably) before its DELEs are
            # sent; the source holds one group's commands (issue 16 item 3).
            for group in doomed.groups():
                await self._store.mark_delete_pending(job.name, group, now)
                refused.update(await session.delete(group))
        except PopkeepError:
            # No QUIT was sent, so the server entered no UPDATE state (RFC 1939 §6):
            # the DELEs are void. (A kill right here is settled by the next _reconcile.)
            await self._settle(job.name, doomed, self._store.revert_delete_pending)
            raise
        if refused:
            # Typically expunged by another client (or by the server finishing an
            # earlier, killed session) since our UIDL: not ours to count. The next
            # run's reconcile sees whether it is still listed.
            await self._store.revert_delete_pending(job.name, sorted(refused))
            run.warnings.append(
                f"the server refused DELE of {len(refused)} message(s); rechecked next run"
            )
        if await session.commit():
            deleted = functools.partial(self._store.mark_deleted, now=self._clock.now())
            await self._settle(job.name, doomed, deleted, refused)
            run.deleted = len(doomed) - len(refused)
        else:
            await self._settle(job.name, doomed, self._store.revert_delete_pending, refused)
            raise TransportError(
                "the server did not confirm QUIT after DELE (RFC 1939 §6): "
                "nothing counts as deleted; the deletions will be retried"
            )

    @staticmethod
    async def _settle(
        account: str,
        doomed: PackedUids,
        change: Callable[[str, list[str]], Awaitable[None]],
        but: Set[str] = frozenset(),
    ) -> None:
        """``change(account, uids)`` for every group of ``doomed``, leaving out ``but``."""
        for group in doomed.groups():
            await change(account, [uid for uid in group if uid not in but] if but else group)

    async def _check_doomed(
        self, run: RunState, session: SourceSession, todo: list[str], doomed: PackedUids
    ) -> list[str]:
        """Before anything is deleted: is each message due for deletion (``doomed``)
        still the one collected? Those the server gave to a new message are retired
        (see :meth:`_retire`) and added to ``todo``; returns the new ``todo``.

        The rule (docs/guarantees.md, point 10): the header digest of ``TOP n 0``
        against the one recorded decides; where there is none (no TOP, or none
        recorded), the LIST size against the size LIST gave when the message was
        collected. The digest comes first because a size alone can mislead: a server
        may add a field it maintains (``Status:``) to a message it served, and a new
        message may have the old one's size. Under a header key (no UIDL, or one
        several messages share) the digest and size are the key itself and prove
        nothing: the sha256 of the message retrieved now against the one collected
        decides (``describe(verify=True)``). Only these messages are asked: a poll
        deleting nothing asks nothing. Messages collected before popkeep recorded
        either are not checked. Their records are read, and the server asked, one
        group (``fetch_group``) at a time (issue 16 item 3)."""
        if run.sink_failed or not doomed:
            return todo
        changed: list[str] = []
        for group in doomed.groups():
            changed += await self._changed(run, session, group)
        if not changed:
            return todo
        await self._retire(run, sorted(changed))
        return [*todo, *changed]

    async def _changed(self, run: RunState, session: SourceSession, uids: list[str]) -> list[str]:
        """Which of ``uids`` (one group of :meth:`_check_doomed`) the server gave to a
        new message."""
        records = await self._store.records(run.job.name, uids)
        recorded = [
            uid for uid in uids
            if (m := records.get(uid)) is not None
            and (m.listed_size is not None or m.digest is not None)
        ]
        if not recorded:
            return []
        changed = []
        for message in await session.describe(recorded, identify=True, verify=True):
            then = records[message.key]
            if message.content is not None and then.sha256 is not None:
                if message.content != then.sha256:  # the key is no proof (ListedMessage)
                    changed.append(message.key)
            elif then.digest is not None and message.identity is not None:
                if message.identity != then.digest:
                    changed.append(message.key)
            elif then.listed_size is not None and then.listed_size != message.size:
                changed.append(message.key)
        return changed

    async def _doomed(self, run: RunState, listed: Set[str]) -> PackedUids:
        """The uids retention deletes now (:func:`popkeep.retention.doomed` over the
        listed DELIVERED messages), decided on the store's thread as the store
        streams the records: the pass holds the uids chosen, not a record or a
        decision per message (issue 16 item 3)."""
        job = run.job
        if job.policy.delete_after is None and job.policy.server_quota is None:
            return PackedUids((), job.fetch_group)  # "never", no quota: all kept
        return await self._store.run(self._decide, run, listed, self._clock.now())

    def _decide(self, run: RunState, listed: Set[str], now: datetime) -> PackedUids:
        """:meth:`_doomed` on the store's thread (the synchronous store)."""
        job, store = run.job, self._store.store

        def on_server() -> Iterator[StoredMessage]:
            return (m for m in store.delivered_oldest_first(job.name) if m.uid in listed)

        stat = ServerStat(run.server_count, run.server_octets)
        required = frozenset(sink_names(job))
        return PackedUids(
            (
                m.uid
                for m in retention.doomed(on_server, stat, job.policy, now)
                # Belt and braces: never delete what every configured sink does not hold.
                if required <= m.sinks
            ),
            job.fetch_group,
        )

    # -- helpers --------------------------------------------------------------------

    def _summary(self, run: RunState, started: datetime, error: PopkeepError | None) -> RunSummary:
        return RunSummary(
            account=run.job.name,
            started_at=started,
            finished_at=self._clock.now(),
            outcome="ok" if error is None else type(error).__name__,
            error=None if error is None else str(error),
            listed=run.listed,
            delivered=run.delivered,
            delivered_bytes=run.delivered_bytes,
            deleted=run.deleted,
            gone=run.gone,
            skipped=run.skipped,
            server_count=run.server_count,
            server_octets=run.server_octets,
            adopted=run.adopted,
        )

"""One collector pass over one account: list → diff → fetch → deliver → record → retain.

Owns: the order of operations that keeps the invariants of DESIGN.md:

- an intent is journaled before any sink sees a message, and unfinished intents
  are recovered (by asking the sinks) before a new session starts;
- a message is DELIVERED only when every sink of the account holds it durably;
- DELE is sent only for DELIVERED messages chosen by :func:`popkeep.retention.decide`,
  after every batch of this run is durable and recorded; deletions are believed
  only when QUIT returns +OK;
- a message that vanished from the server is GONE, not an error; content seen
  again under a new UIDL is adopted, not delivered twice.

Must not: name concrete sources, sinks or stores (``app`` wires them), or format output.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from popkeep import retention
from popkeep.clock import Clock
from popkeep.errors import PopkeepError, TransportError
from popkeep.model import (
    ListingEntry,
    MessageState,
    Receipt,
    RetentionPolicy,
    RunSummary,
    ServerStat,
    StoredMessage,
)
from popkeep.sinks.base import Delivery, Sink, delivery_key
from popkeep.sources.base import SessionFactory, SourceSession
from popkeep.spool import SpooledMessage
from popkeep.state.base import Delivered, Intent, StateStore

log = logging.getLogger(__name__)

#: Called after each durable batch: (account, messages done, messages to fetch, bytes done).
ProgressCallback = Callable[[str, int, int, int], None]


@dataclass(frozen=True, slots=True)
class AccountJob:
    """What the collector needs to know about one account (built by ``app``)."""

    name: str
    connect: SessionFactory
    sinks: Sequence[Sink]
    policy: RetentionPolicy
    max_message_size: int | None = None
    batch_messages: int = 1000
    batch_bytes: int = 16 << 20
    spool_dir: Path | None = None


@dataclass(slots=True)
class AccountResult:
    """The run's summary and, when the run failed, the error that ended it."""

    summary: RunSummary
    error: PopkeepError | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Run:
    """Mutable counters of one pass; frozen into a RunSummary at the end."""

    job: AccountJob
    #: uid → state of every message the store knows for this account (cheap to load)
    states: dict[str, MessageState]
    #: full records, loaded only when partial receipts matter (see _held_by)
    known: dict[str, StoredMessage] | None = None
    listed: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    adopted: int = 0
    deleted: int = 0
    gone: int = 0
    skipped: int = 0
    server_count: int = 0
    server_octets: int = 0
    total: int = 0
    done: int = 0
    #: delivery keys journaled by an earlier run that never recorded its receipts
    pending_keys: frozenset[str] = frozenset()
    #: sinks that failed this run (open or deliver): skipped from then on, no deletions
    failed_sinks: dict[str, PopkeepError] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def sink_failed(self) -> bool:
        return bool(self.failed_sinks)


class Collector:
    """Runs passes; one instance may serve many accounts (sequentially or concurrently)."""

    def __init__(
        self, store: StateStore, clock: Clock, progress: ProgressCallback | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._progress = progress

    async def run(self, job: AccountJob) -> AccountResult:
        """One pass. Never raises a PopkeepError: it is returned in the result."""
        started = self._clock.now()
        run = _Run(job=job, states={})
        error: PopkeepError | None = None
        try:
            await self._pass(run)
        except PopkeepError as exc:
            error = exc
            log.warning("account %s: %s", job.name, exc)
        summary = self._summary(run, started, error)
        self._store.record_run(summary)
        return AccountResult(summary, error, run.warnings)

    async def _pass(self, run: _Run) -> None:
        job = run.job
        await self._open_sinks(run)
        try:
            run.pending_keys = frozenset(i.key for i in self._store.pending_intents(job.name))
            session = await job.connect()
            try:
                await self._session(run, session)
            finally:
                await session.close()
        finally:
            for sink in job.sinks:
                await sink.close()
        if run.failed_sinks:
            # The other sinks delivered and were recorded; this one is retried next run.
            name, error = next(iter(run.failed_sinks.items()))
            raise type(error)(f'sink "{name}": {error}')

    async def _open_sinks(self, run: _Run) -> None:
        """Open every sink; one that fails is skipped this run (and blocks deletions)."""
        for sink in run.job.sinks:
            try:
                await sink.open()
            except PopkeepError as exc:
                log.warning("account %s: sink %s: %s", run.job.name, sink.name, exc)
                run.failed_sinks[sink.name] = exc
        if len(run.failed_sinks) == len(run.job.sinks):
            name, error = next(iter(run.failed_sinks.items()))
            raise type(error)(f'sink "{name}": {error}')

    async def _session(self, run: _Run, session: SourceSession) -> None:
        stat = await session.stat()
        listing = await session.listing()
        run.server_count, run.server_octets, run.listed = stat.count, stat.octets, len(listing)
        run.states = self._store.uid_states(run.job.name)
        self._reconcile(run, listing)
        wanted = self._select(run, listing)
        await self._fetch(run, session, wanted)
        await self._retain(run, session, listing)

    # -- diff -----------------------------------------------------------------------

    def _reconcile(self, run: _Run, listing: Sequence[ListingEntry]) -> None:
        """Settle what changed on the server since the last run (DESIGN.md states)."""
        listed = {entry.uid for entry in listing}
        account, now = run.job.name, self._clock.now()
        pending = [u for u, st in run.states.items() if st is MessageState.DELETE_PENDING]
        # A DELE whose QUIT reply we never saw: still listed means it did not happen.
        self._store.revert_delete_pending(account, [u for u in pending if u in listed])
        self._store.mark_deleted(account, [u for u in pending if u not in listed], now)
        # Set difference first (C speed): on a poll where nothing vanished, no Python
        # loop over the 20,000 known uids is needed.
        unlisted = run.states.keys() - listed
        vanished = (
            [
                uid
                for uid, st in run.states.items()
                if uid in unlisted and st in (MessageState.SEEN, MessageState.DELIVERED)
            ]
            if unlisted
            else []
        )
        if vanished:
            log.info("account %s: %d messages gone (deleted elsewhere)", account, len(vanished))
            self._store.mark_gone(account, vanished, now)
        run.gone = len(vanished)
        if pending or vanished:
            run.states = self._store.uid_states(account)

    def _select(self, run: _Run, listing: Sequence[ListingEntry]) -> list[ListingEntry]:
        """Listed messages that still need delivering, minus those too large to take."""
        limit = run.job.max_message_size
        wanted: list[ListingEntry] = []
        states = run.states
        for entry in listing:
            state = states.get(entry.uid)
            if state is not None and state is not MessageState.SEEN:
                continue
            if limit is not None and entry.size > limit:
                run.skipped += 1
                run.warnings.append(
                    f"message {entry.number} ({entry.size} octets) is larger than "
                    f"max_message_size ({limit}); left on the server"
                )
                continue
            wanted.append(entry)
        run.total = len(wanted)
        return wanted

    # -- fetch and deliver --------------------------------------------------------------

    async def _fetch(self, run: _Run, session: SourceSession, wanted: list[ListingEntry]) -> None:
        """Stream the wanted messages; deliver in batches while the next batch downloads."""
        if not wanted:
            return
        by_number = {entry.number: entry for entry in wanted}
        batch: list[tuple[ListingEntry, SpooledMessage]] = []
        batch_bytes = 0
        flushing: asyncio.Task[None] | None = None
        try:
            async for number, message in session.retrieve(list(by_number), run.job.spool_dir):
                batch.append((by_number[number], message))
                batch_bytes += message.size
                if len(batch) >= run.job.batch_messages or batch_bytes >= run.job.batch_bytes:
                    if flushing is not None:
                        await flushing
                    flushing = asyncio.ensure_future(self._deliver(run, batch))
                    batch, batch_bytes = [], 0
        finally:
            # Whatever ended the stream, make what was fully received durable first.
            if flushing is not None:
                await flushing
            if batch:
                await self._deliver(run, batch)

    async def _deliver(self, run: _Run, batch: list[tuple[ListingEntry, SpooledMessage]]) -> None:
        try:
            fresh, repeats = self._split_known_content(run, batch)
            if fresh:
                await self._deliver_fresh(run, fresh)
            self._adopt(run, repeats)
        finally:
            for _, message in batch:
                message.close()
        run.done += len(batch)
        if self._progress is not None:
            self._progress(run.job.name, run.done, run.total, run.delivered_bytes)

    def _split_known_content(
        self, run: _Run, batch: list[tuple[ListingEntry, SpooledMessage]]
    ) -> tuple[list[tuple[ListingEntry, SpooledMessage]], list[tuple[str, str, int]]]:
        """Dedup by content: (messages to deliver, (uid, sha256, size) to adopt afterwards).

        Content already delivered under another UIDL (a provider re-keyed its
        mailbox, or lists the same bytes twice) is adopted, never delivered again.
        """
        fresh: list[tuple[ListingEntry, SpooledMessage]] = []
        repeats: list[tuple[str, str, int]] = []
        in_batch: set[str] = set()
        known = self._store.known_hashes(run.job.name, [m.sha256 for _, m in batch])
        for entry, message in batch:
            original = None
            if message.sha256 in known:
                original = self._store.find_by_hash(run.job.name, message.sha256)
            if message.sha256 in in_batch or (
                original is not None and original.uid != entry.uid and original.sinks
            ):
                repeats.append((entry.uid, message.sha256, message.size))
            else:
                in_batch.add(message.sha256)
                fresh.append((entry, message))
        return fresh, repeats

    def _adopt(self, run: _Run, repeats: list[tuple[str, str, int]]) -> None:
        for uid, sha256, size in repeats:
            original = self._store.find_by_hash(run.job.name, sha256)
            if original is None or not original.sinks:
                continue  # its first copy failed to deliver: fetched again next run
            self._store.adopt(run.job.name, uid, original, size)
            run.adopted += 1

    async def _deliver_fresh(
        self, run: _Run, fresh: list[tuple[ListingEntry, SpooledMessage]]
    ) -> None:
        job = run.job
        names = self._sink_names(job)
        deliveries = [
            Delivery(job.name, entry.uid, delivery_key(job.name, msg.sha256), msg)
            for entry, msg in fresh
        ]
        self._store.journal(
            [
                Intent(job.name, d.uid, d.key, d.message.sha256, d.message.size, names)
                for d in deliveries
            ]
        )
        receipts: dict[str, list[Receipt]] = {d.uid: [] for d in deliveries}
        for sink in job.sinks:
            if sink.name in run.failed_sinks:
                continue
            todo = [d for d in deliveries if sink.name not in self._held_by(run, d.uid)]
            try:
                for delivery, receipt in await self._deliver_to(run, sink, todo):
                    receipts[delivery.uid].append(receipt)
            except PopkeepError as exc:
                log.warning("account %s: sink %s: %s", job.name, sink.name, exc)
                run.failed_sinks[sink.name] = exc
        delivered = [
            Delivered(d.uid, d.message.sha256, d.message.size, tuple(receipts[d.uid]))
            for d in deliveries
        ]
        self._store.record_delivered(job.name, delivered, names, self._clock.now())
        if not run.failed_sinks:
            run.delivered += len(deliveries)
            run.delivered_bytes += sum(d.message.size for d in deliveries)

    async def _deliver_to(
        self, run: _Run, sink: Sink, todo: list[Delivery]
    ) -> list[tuple[Delivery, Receipt]]:
        """Deliver ``todo`` to one sink, first asking it about keys an earlier run journaled.

        This is the crash recovery: a run killed between a durable delivery and its
        state commit left an intent; the sink is searched (Maildir by file name,
        IMAP and Gmail by Message-ID + content hash) before anything is redone.
        """
        done: list[tuple[Delivery, Receipt]] = []
        if run.pending_keys and sink.exactly_once:
            remaining = []
            for delivery in todo:
                found = None
                if delivery.key in run.pending_keys:
                    found = await sink.find(delivery.key, delivery.message)
                if found is None:
                    remaining.append(delivery)
                else:
                    done.append((delivery, found))
            todo = remaining
        if todo:
            done.extend(zip(todo, await sink.deliver(todo), strict=True))
        return done

    def _held_by(self, run: _Run, uid: str) -> frozenset[str]:
        """Sinks already holding ``uid`` (partial receipts of a SEEN message)."""
        if run.states.get(uid) is not MessageState.SEEN:
            return frozenset()
        if run.known is None:
            run.known = self._store.messages(run.job.name)
        known = run.known.get(uid)
        return known.sinks if known is not None else frozenset()

    # -- retention --------------------------------------------------------------------

    async def _retain(
        self,
        run: _Run,
        session: SourceSession,
        listing: Sequence[ListingEntry],
    ) -> None:
        """Delete what the policy chose, then QUIT; believe it only on QUIT +OK."""
        job = run.job
        numbers = {entry.uid: entry.number for entry in listing}
        doomed = [] if run.sink_failed else self._doomed(run, numbers)
        if not doomed:
            await session.quit()
            return
        now = self._clock.now()
        self._store.mark_delete_pending(job.name, doomed, now)
        try:
            refused = set(await session.delete([numbers[uid] for uid in doomed]))
        except PopkeepError:
            # No QUIT was sent, so the server entered no UPDATE state (RFC 1939 §6):
            # the DELEs are void. (A kill right here is settled by the next _reconcile.)
            self._store.revert_delete_pending(job.name, doomed)
            raise
        if refused:
            # Typically expunged by another client (or by the server finishing an
            # earlier, killed session) since our UIDL: not ours to count. The next
            # run's reconcile sees whether it is still listed.
            kept = [uid for uid in doomed if numbers[uid] in refused]
            self._store.revert_delete_pending(job.name, kept)
            doomed = [uid for uid in doomed if numbers[uid] not in refused]
            run.warnings.append(
                f"the server refused DELE of {len(kept)} message(s); rechecked next run"
            )
        if await session.quit():
            self._store.mark_deleted(job.name, doomed, self._clock.now())
            run.deleted = len(doomed)
        else:
            self._store.revert_delete_pending(job.name, doomed)
            raise TransportError(
                "the server did not confirm QUIT after DELE (RFC 1939 §6): "
                "nothing counts as deleted; the deletions will be retried"
            )

    def _doomed(self, run: _Run, numbers: dict[str, int]) -> list[str]:
        job = run.job
        if job.policy.delete_after is None and job.policy.server_quota is None:
            return []  # "never" and no quota: decide() would keep everything
        messages = self._store.messages(job.name)
        on_server = [m for uid, m in messages.items() if uid in numbers]
        stat = ServerStat(run.server_count, run.server_octets)
        required = frozenset(self._sink_names(job))
        return [
            d.uid
            for d in retention.decide(on_server, stat, job.policy, self._clock.now())
            # Belt and braces: never delete what every configured sink does not hold.
            if d.delete and required <= messages[d.uid].sinks
        ]

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _sink_names(job: AccountJob) -> tuple[str, ...]:
        return tuple(sink.name for sink in job.sinks)

    def _summary(self, run: _Run, started: datetime, error: PopkeepError | None) -> RunSummary:
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

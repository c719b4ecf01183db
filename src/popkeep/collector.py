"""One collector pass over one account: list → diff → fetch → deliver → record → retain.

Owns: the order of operations that keeps the invariants of DESIGN.md:

- an intent is journaled before any sink makes a message visible, and unfinished
  intents are recovered (by asking the sinks) before anything is written again.
  A staging sink (Maildir) may write a message *invisibly* before that (staged:
  not durable, not findable, counting for nothing); the intents are journaled at
  the commit that makes a group durable and visible;
- a message is DELIVERED only when every sink of the account holds it durably;
- DELE is sent only for DELIVERED messages chosen by :func:`popkeep.retention.decide`,
  after every commit of this run is durable and recorded; deletions are believed
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
from popkeep.sinks.base import Delivery, Sink, Staged, StagingSink, delivery_key, staging
from popkeep.sources.base import SessionFactory, SourceSession
from popkeep.spool import SpooledMessage
from popkeep.state.base import Delivered, Intent, StateStore

log = logging.getLogger(__name__)

#: Called after each commit (durable and recorded): (account, messages done, messages
#: to fetch, bytes done).
ProgressCallback = Callable[[str, int, int, int], None]


@dataclass(frozen=True, slots=True)
class AccountJob:
    """What the collector needs to know about one account (built by ``app``)."""

    name: str
    connect: SessionFactory
    sinks: Sequence[Sink]
    policy: RetentionPolicy
    max_message_size: int | None = None
    #: received-but-not-staged bytes before the stream pauses; with a non-staging
    #: sink, also the commit group (messages are held open until it has them)
    batch_messages: int = 1000
    batch_bytes: int = 16 << 20
    spool_dir: Path | None = None
    #: staging sinks only: commit (make durable, record) at the latest after this
    #: many messages, bytes or seconds since the last commit, and at the end
    commit_messages: int = 5000
    commit_bytes: int = 512 << 20
    commit_seconds: float = 10.0
    #: at most this much is handed to the staging sinks in one step, and a step
    #: starts once this much has arrived (or a commit is due)
    stage_messages: int = 256
    stage_bytes: int = 8 << 20
    stage_min_messages: int = 64
    stage_min_bytes: int = 1 << 20


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
    #: the same, grouped: state → uids (the store's form; see _load_states)
    by_state: dict[MessageState, list[str]] = field(default_factory=dict)
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


@dataclass(slots=True)
class _Flow:
    """Messages of one fetch on their way from the stream to a commit (see ``_fetch``)."""

    #: sink name → the sinks that stage (write as messages arrive, commit later)
    stagers: dict[str, StagingSink]
    #: a non-staging sink: messages stay open until the commit hands them to it
    hold: bool
    commit_messages: int
    commit_bytes: int
    last_commit: float  #: clock.monotonic() of the last commit (or of the start)
    #: staging sink name → its handles since the last commit
    handles: dict[str, list[Staged]]
    #: received, not yet taken by a step
    received: list[tuple[ListingEntry, SpooledMessage]] = field(default_factory=list)
    received_bytes: int = 0
    #: fresh messages since the last commit (staged, or held for non-staging sinks)
    deliveries: list[Delivery] = field(default_factory=list)
    uncommitted_bytes: int = 0
    taken: int = 0  #: messages (fresh and repeats) taken since the last commit
    #: uid → receipts a staging sink already held from an earlier, crashed run
    found: dict[str, list[Receipt]] = field(default_factory=dict)
    #: (uid, sha256, size) of repeated content, adopted after the next commit
    repeats: list[tuple[str, str, int]] = field(default_factory=list)
    #: content delivered (or being delivered) this run: later copies are repeats
    hashes: set[str] = field(default_factory=set)
    broken: bool = False  #: a step failed: nothing more is committed this run


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
            session = await self._connect(run)
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

    async def _connect(self, run: _Run) -> SourceSession:
        """Connect and log in while a worker thread reads the account's state.

        Login, and the server opening a large mailbox (≈ 0.1 s for 20,000 messages
        on Dovecot), are round trips and server time; the reads need neither.
        """
        name = run.job.name
        reading = asyncio.ensure_future(asyncio.to_thread(self._read_state, name))
        try:
            session = await run.job.connect()
        except BaseException:
            await asyncio.gather(reading, return_exceptions=True)
            raise
        try:
            run.pending_keys, by_state = await reading
        except BaseException:
            await session.close()
            raise
        self._load_states(run, by_state)
        return session

    def _read_state(self, account: str) -> tuple[frozenset[str], dict[MessageState, list[str]]]:
        pending = frozenset(i.key for i in self._store.pending_intents(account))
        return pending, self._store.uids_by_state(account)

    @staticmethod
    def _load_states(run: _Run, by_state: dict[MessageState, list[str]]) -> None:
        states: dict[str, MessageState] = {}
        for state, uids in by_state.items():
            states.update(dict.fromkeys(uids, state))  # in C: no Python loop per uid
        run.states, run.by_state = states, by_state

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
        numbers = await session.uids()
        run.server_count, run.server_octets, run.listed = stat.count, stat.octets, len(numbers)
        self._reconcile(run, numbers)
        wanted = await self._select(run, session, numbers)
        await self._fetch(run, session, wanted)
        await self._retain(run, session, numbers)

    # -- diff -----------------------------------------------------------------------

    def _reconcile(self, run: _Run, listed: dict[str, int]) -> None:
        """Settle what changed on the server since the last run (DESIGN.md states).

        ``listed``: {uid: message number} of this session.
        """
        account, now = run.job.name, self._clock.now()
        pending = run.by_state.get(MessageState.DELETE_PENDING, [])
        # A DELE whose QUIT reply we never saw: still listed means it did not happen.
        self._store.revert_delete_pending(account, [u for u in pending if u in listed])
        self._store.mark_deleted(account, [u for u in pending if u not in listed], now)
        # Set difference first (C speed): on a poll where nothing vanished, no Python
        # loop over the 20,000 known uids is needed.
        unlisted = run.states.keys() - listed
        alive = (MessageState.SEEN, MessageState.DELIVERED)
        vanished = sorted(uid for uid in unlisted if run.states[uid] in alive)
        if vanished:
            log.info("account %s: %d messages gone (deleted elsewhere)", account, len(vanished))
            self._store.mark_gone(account, vanished, now)
        run.gone = len(vanished)
        if pending or vanished:
            self._load_states(run, self._store.uids_by_state(account))

    async def _select(
        self, run: _Run, session: SourceSession, listed: dict[str, int]
    ) -> list[ListingEntry]:
        """Listed messages that still need delivering, minus those too large to take.

        Only their sizes are asked for: a poll with nothing new sends no LIST.
        """
        states = run.states
        # Set difference first (C speed): unknown uids, then the few SEEN ones.
        todo = listed.keys() - states.keys()
        todo.update(uid for uid in run.by_state.get(MessageState.SEEN, ()) if uid in listed)
        numbers = sorted(listed[uid] for uid in todo)
        sizes = await session.sizes(numbers, len(listed)) if numbers else {}
        uid_of = {listed[uid]: uid for uid in todo}
        limit = run.job.max_message_size
        wanted: list[ListingEntry] = []
        for number in numbers:
            entry = ListingEntry(number, uid_of[number], sizes[number])
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
    #
    # Messages flow: received (from the stream) → staged (StagingSinks wrote them,
    # invisibly) → committed (intents journaled, every sink durable, receipts
    # recorded). One step at a time runs beside the stream (see _step), so the disk
    # works while the network reads; a commit groups thousands of messages.

    async def _fetch(self, run: _Run, session: SourceSession, wanted: list[ListingEntry]) -> None:
        """Stream the wanted messages; stage them as they arrive, commit in groups."""
        if not wanted:
            return
        job = run.job
        by_number = {entry.number: entry for entry in wanted}
        flow = self._flow(job)
        step: asyncio.Future[None] | None = None
        try:
            async for number, message in session.retrieve(list(by_number), job.spool_dir):
                flow.received.append((by_number[number], message))
                flow.received_bytes += message.size
                if step is not None and step.done():
                    finished, step = step, None
                    finished.result()  # a failed step ends the stream
                if step is None and self._ready(job, flow):
                    step = asyncio.ensure_future(self._step(run, flow))
                # Backpressure: stop reading while too much waits for the sinks.
                while step is not None and flow.received_bytes > job.batch_bytes:
                    finished, step = step, None
                    await finished
                    if flow.received:
                        step = asyncio.ensure_future(self._step(run, flow))
        finally:
            try:
                if step is not None:
                    await step
                # Whatever ended the stream, make what was fully received durable.
                if not flow.broken:
                    await self._step(run, flow, final=True)
            finally:
                await self._abandon(run, flow)

    def _flow(self, job: AccountJob) -> _Flow:
        stagers = {s.name: v for s in job.sinks if (v := staging(s)) is not None}
        hold = len(stagers) < len(job.sinks)
        return _Flow(
            stagers=stagers,
            hold=hold,
            # A non-staging sink needs the messages open until the commit: keep it small.
            commit_messages=job.batch_messages if hold else job.commit_messages,
            commit_bytes=job.batch_bytes if hold else job.commit_bytes,
            last_commit=self._clock.monotonic(),
            handles={name: [] for name in stagers},
        )

    async def _step(self, run: _Run, flow: _Flow, final: bool = False) -> None:
        """Stage what has been received (one group, or everything when ``final``) and
        commit when a trigger is reached (always when ``final``)."""
        try:
            while flow.received:
                await self._stage(run, flow, self._take(run.job, flow))
                if self._due(run.job, flow):
                    await self._commit(run, flow)
                if not final:
                    return
            if final and flow.taken:
                await self._commit(run, flow)
        except BaseException:
            flow.broken = True  # nothing more is committed this run
            raise

    def _ready(self, job: AccountJob, flow: _Flow) -> bool:
        """Whether enough has arrived to be worth a step: tiny groups cost a thread
        hand-off and a dedup query each, while the disk is free anyway."""
        return (
            len(flow.received) >= min(job.stage_min_messages, job.stage_messages)
            or flow.received_bytes >= job.stage_min_bytes
            or self._clock.monotonic() - flow.last_commit >= job.commit_seconds
        )

    @staticmethod
    def _take(job: AccountJob, flow: _Flow) -> list[tuple[ListingEntry, SpooledMessage]]:
        """The oldest received messages, up to ``stage_messages`` / ``stage_bytes`` (≥ 1)."""
        count = size = 0
        for _, message in flow.received:
            if count and (count >= job.stage_messages or size + message.size > job.stage_bytes):
                break
            count += 1
            size += message.size
        group = flow.received[:count]
        del flow.received[:count]
        flow.received_bytes -= size
        return group

    def _due(self, job: AccountJob, flow: _Flow) -> bool:
        if not flow.taken:
            return False
        return (
            flow.taken >= flow.commit_messages
            or flow.uncommitted_bytes >= flow.commit_bytes
            or self._clock.monotonic() - flow.last_commit >= job.commit_seconds
        )

    async def _stage(
        self, run: _Run, flow: _Flow, group: list[tuple[ListingEntry, SpooledMessage]]
    ) -> None:
        """Dedup ``group``, then hand the fresh messages to every staging sink."""
        job = run.job
        fresh, repeats = self._split_known_content(run, flow, group)
        flow.taken += len(group)
        flow.repeats.extend(repeats)
        deliveries = [
            Delivery(job.name, entry.uid, delivery_key(job.name, msg.sha256), msg)
            for entry, msg in fresh
        ]
        flow.deliveries.extend(deliveries)
        flow.uncommitted_bytes += sum(d.message.size for d in deliveries)
        try:
            for name, sink in flow.stagers.items():
                if name in run.failed_sinks:
                    continue
                todo = [d for d in deliveries if name not in self._held_by(run, d.uid)]
                todo = await self._recover(run, sink, todo, flow.found)
                try:
                    flow.handles[name].extend(await sink.stage(todo))
                except PopkeepError as exc:
                    await self._fail(run, flow, sink, exc)
        finally:
            # Every staging sink has its copy: free the memory / spool file now, so a
            # big message's spool is gone before the commit's flush. Repeats are
            # never delivered; with a non-staging sink the fresh ones wait for it.
            keep = {id(msg) for _, msg in fresh} if flow.hold else set()
            for _, message in group:
                if id(message) not in keep:
                    message.close()

    async def _fail(self, run: _Run, flow: _Flow, sink: Sink, exc: PopkeepError) -> None:
        """``sink`` failed: skip it for the rest of the run (no deletions), drop its staging."""
        log.warning("account %s: sink %s: %s", run.job.name, sink.name, exc)
        run.failed_sinks[sink.name] = exc
        stager = flow.stagers.get(sink.name)
        if stager is not None:
            await stager.discard(flow.handles[sink.name])
            flow.handles[sink.name] = []

    def _split_known_content(
        self, run: _Run, flow: _Flow, group: list[tuple[ListingEntry, SpooledMessage]]
    ) -> tuple[list[tuple[ListingEntry, SpooledMessage]], list[tuple[str, str, int]]]:
        """Dedup by content: (messages to deliver, (uid, sha256, size) to adopt afterwards).

        Content already delivered under another UIDL (a provider re-keyed its
        mailbox, or lists the same bytes twice), or already staged this run, is
        adopted after the commit that holds its first copy, never delivered again.
        """
        fresh: list[tuple[ListingEntry, SpooledMessage]] = []
        repeats: list[tuple[str, str, int]] = []
        known = self._store.known_hashes(run.job.name, [m.sha256 for _, m in group])
        for entry, message in group:
            original = None
            if message.sha256 in known:
                original = self._store.find_by_hash(run.job.name, message.sha256)
            if message.sha256 in flow.hashes or (
                original is not None and original.uid != entry.uid and original.sinks
            ):
                repeats.append((entry.uid, message.sha256, message.size))
            else:
                flow.hashes.add(message.sha256)
                fresh.append((entry, message))
        return fresh, repeats

    def _adopt(self, run: _Run, repeats: list[tuple[str, str, int]]) -> None:
        for uid, sha256, size in repeats:
            original = self._store.find_by_hash(run.job.name, sha256)
            if original is None or not original.sinks:
                continue  # its first copy failed to deliver: fetched again next run
            self._store.adopt(run.job.name, uid, original, size)
            run.adopted += 1

    async def _commit(self, run: _Run, flow: _Flow) -> None:
        """Make everything staged (or held) since the last commit durable and recorded."""
        deliveries, repeats, taken = flow.deliveries, flow.repeats, flow.taken
        try:
            if deliveries:
                await self._deliver_fresh(run, flow, deliveries)
        finally:
            for delivery in deliveries:
                delivery.message.close()
        flow.deliveries, flow.repeats, flow.found = [], [], {}
        flow.handles = {name: [] for name in flow.stagers}
        flow.taken = flow.uncommitted_bytes = 0
        flow.last_commit = self._clock.monotonic()
        self._adopt(run, repeats)
        run.done += taken
        if self._progress is not None:
            self._progress(run.job.name, run.done, run.total, run.delivered_bytes)

    async def _deliver_fresh(self, run: _Run, flow: _Flow, deliveries: list[Delivery]) -> None:
        """Journal → every sink durable (commit or deliver) → record, in that order."""
        job = run.job
        names = self._sink_names(job)
        self._store.journal(
            [
                Intent(job.name, d.uid, d.key, d.message.sha256, d.message.size, names)
                for d in deliveries
            ]
        )
        receipts = {d.uid: list(flow.found.get(d.uid, ())) for d in deliveries}
        for sink in job.sinks:
            if sink.name in run.failed_sinks:
                continue
            try:
                for delivery, receipt in await self._deliver_to(run, flow, sink, deliveries):
                    receipts[delivery.uid].append(receipt)
            except PopkeepError as exc:
                await self._fail(run, flow, sink, exc)
        delivered = [
            Delivered(d.uid, d.message.sha256, d.message.size, tuple(receipts[d.uid]))
            for d in deliveries
        ]
        self._store.record_delivered(job.name, delivered, names, self._clock.now())
        if not run.failed_sinks:
            run.delivered += len(deliveries)
            run.delivered_bytes += sum(d.message.size for d in deliveries)

    async def _deliver_to(
        self, run: _Run, flow: _Flow, sink: Sink, deliveries: list[Delivery]
    ) -> list[tuple[Delivery, Receipt]]:
        """One sink's share of a commit: commit what it staged, or deliver (non-staging)."""
        stager = flow.stagers.get(sink.name)
        if stager is not None:
            handles = flow.handles[sink.name]
            receipts = await stager.commit(handles)
            return [(h.delivery, r) for h, r in zip(handles, receipts, strict=True)]
        found: dict[str, list[Receipt]] = {}
        todo = [d for d in deliveries if sink.name not in self._held_by(run, d.uid)]
        todo = await self._recover(run, sink, todo, found)
        done = [(d, r) for d in deliveries for r in found.get(d.uid, ())]
        if todo:
            done.extend(zip(todo, await sink.deliver(todo), strict=True))
        return done

    async def _recover(
        self, run: _Run, sink: Sink, todo: list[Delivery], found: dict[str, list[Receipt]]
    ) -> list[Delivery]:
        """Ask ``sink`` about keys an earlier run journaled; add what it holds to ``found``
        (uid → receipts) and return the rest.

        This is the crash recovery: a run killed between a durable delivery and its
        state commit left an intent; the sink is searched (Maildir by file name,
        IMAP and Gmail by Message-ID + content hash) before anything is redone.
        """
        if not run.pending_keys or not sink.exactly_once:
            return todo
        remaining = []
        for delivery in todo:
            receipt = None
            if delivery.key in run.pending_keys:
                receipt = await sink.find(delivery.key, delivery.message)
            if receipt is None:
                remaining.append(delivery)
            else:
                found.setdefault(delivery.uid, []).append(receipt)
        return remaining

    async def _abandon(self, run: _Run, flow: _Flow) -> None:
        """After the stream: remove what is staged and not committed, close what is open."""
        for name, stager in flow.stagers.items():
            if flow.handles[name]:
                await stager.discard(flow.handles[name])
                flow.handles[name] = []
        for delivery in flow.deliveries:
            delivery.message.close()
        for _, message in flow.received:
            message.close()

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
        numbers: dict[str, int],
    ) -> None:
        """Delete what the policy chose, then QUIT; believe it only on QUIT +OK.

        ``numbers``: {uid: message number} of this session.
        """
        job = run.job
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

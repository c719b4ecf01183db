"""Fetch → stage → commit: how the messages of one pass reach every sink durably.

Owns: the order that makes a message DELIVERED (see the collector's docstring):
dedup by content, the intent journal before any sink makes a message visible,
every sink durable before ``record_delivered``, crash recovery by asking the
sinks about keys an earlier run journaled, and per-sink failure.

Messages flow: received (from the stream) → staged (StagingSinks wrote them,
invisibly) → committed (intents journaled, every sink durable, receipts
recorded). One step at a time runs beside the stream (see ``_step``), so the disk
works while the network reads; a commit groups thousands of messages. An account
with a sink that can neither stage nor look back (mda, lmtp: ``exactly_once`` is
False) commits after every message instead, so a kill delivers again at most the
one message that sink was handling (docs/guarantees.md).

Must not: talk to the server beyond consuming ``retrieve``, or decide retention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from popkeep.clock import Clock
from popkeep.collector.job import AccountJob, ProgressCallback, RunState, sink_names
from popkeep.collector.memory import release
from popkeep.collector.refusals import Refused, remember, skip_refused
from popkeep.errors import DeliveryError, MessageAborted, MessageRefused, PopkeepError
from popkeep.headers import header_digest, header_of
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery, Sink, Staged, StagingSink, delivery_key, staging
from popkeep.sources.base import ListedMessage, SourceSession
from popkeep.spool import SpooledMessage
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.base import Delivered, Intent, Refusal

log = logging.getLogger(__name__)


class _Flow:
    """Messages of one fetch on their way from the stream to a commit (see ``_fetch``).

    A plain class, not a dataclass: see :mod:`.job`."""

    __slots__ = (
        "broken", "commit_bytes", "commit_messages", "deliveries", "digests", "found",
        "group", "handles", "hashes", "hold", "last_commit", "received", "received_bytes",
        "refused", "repeats", "sizes", "stagers", "taken", "uncommitted_bytes",
    )

    def __init__(
        self,
        stagers: dict[str, StagingSink],
        hold: bool,
        commit_messages: int,
        commit_bytes: int,
        last_commit: float,
        group: int,
    ) -> None:
        #: sink name → the sinks that stage (write as messages arrive, commit later)
        self.stagers = stagers
        #: a non-staging sink: messages stay open until the commit hands them to it
        self.hold = hold
        self.commit_messages = commit_messages
        self.commit_bytes = commit_bytes
        self.last_commit = last_commit  #: clock.monotonic() of the last commit (or of the start)
        self.group = group  #: messages a step takes at most (``AccountJob.stage_messages``, or 1)
        #: staging sink name → its handles since the last commit
        self.handles: dict[str, list[Staged]] = {name: [] for name in stagers}
        #: received, not yet taken by a step
        self.received: list[tuple[ListedMessage, SpooledMessage]] = []
        self.received_bytes = 0
        #: fresh messages since the last commit (staged, or held for non-staging sinks)
        self.deliveries: list[Delivery] = []
        self.uncommitted_bytes = 0
        self.taken = 0  #: messages (fresh and repeats) taken since the last commit
        #: uid → receipts a staging sink already held from an earlier, crashed run
        self.found: dict[str, list[Receipt]] = {}
        #: (uid, sha256, size) of repeated content, adopted after the next commit
        self.repeats: list[tuple[str, str, int]] = []
        #: content staged or held since the last commit: later copies are repeats (what
        #: a commit recorded, the store knows; so this holds one group, not the run)
        self.hashes: set[str] = set()
        self.broken = False  #: a step failed: nothing more is committed this run
        #: uid → sinks that refused it for good on an earlier run (not offered it again)
        self.refused: Refused = {}
        self.sizes: dict[str, int] = {}  #: uid → listed size (what a refusal remembers)
        #: uid → header digest of the message received (recorded with its receipts, to
        #: tell a later message under the same uid apart: docs/guarantees.md); held
        #: until its commit only
        self.digests: dict[str, str] = {}


def _head_chunks(message: SpooledMessage) -> Iterable[bytes]:
    """Where a received message's header is read from: its bytes when held in memory,
    else the first part of its spool file (the LF copy when it has one: the digest
    does not depend on line endings)."""
    return (message.read_all(),) if message.in_memory else message.lf_chunks(64 << 10)


class _Outcome(NamedTuple):
    """What one sink did with its share of a commit."""

    done: Sequence[tuple[Delivery, Receipt]]
    refused: Sequence[tuple[Delivery, MessageRefused]] = ()
    #: the sink failed: it is skipped for the rest of the run (no deletions)
    error: PopkeepError | None = None
    #: the message the sink was handling when it failed: it may hold it
    unsure: Delivery | None = None


class Pipeline:
    """Delivers what one pass fetches; one instance serves every pass of a collector."""

    def __init__(
        self, store: AsyncStore, clock: Clock, progress: ProgressCallback | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._progress = progress

    async def fetch(
        self, run: RunState, session: SourceSession, wanted: list[ListedMessage]
    ) -> None:
        """Stream the wanted messages; stage them as they arrive, commit in groups."""
        if not wanted:
            return
        job = run.job
        flow = self._flow(job)
        await self._load_known(run, wanted)
        wanted, flow.refused = await skip_refused(self._store, run, wanted, self.held_by)
        if not wanted:
            return
        by_key = {entry.key: entry for entry in wanted}
        flow.sizes = {entry.key: entry.size for entry in wanted}
        step: asyncio.Future[None] | None = None
        try:
            async for key, message in session.retrieve(list(by_key)):
                flow.received.append((by_key[key], message))
                flow.digests[key] = header_digest(header_of(_head_chunks(message)))
                flow.received_bytes += message.size
                if step is not None and step.done():
                    finished, step = step, None
                    finished.result()  # a failed step ends the stream
                if step is None and self._ready(job, flow):
                    step = asyncio.ensure_future(self._step(run, flow))
                # Backpressure: stop reading while too much waits for the sinks.
                while step is not None and self._full(job, flow):
                    finished, step = step, None
                    await finished
                    if flow.received:
                        step = asyncio.ensure_future(self._step(run, flow))
        except MessageAborted as exc:
            await self._aborted(run, flow, exc)
            raise
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
        """The flow of one fetch: its commit triggers and step size.

        A non-staging sink needs the messages open until the commit: its commits are
        kept small (``batch_*``). One that cannot look back either (``exactly_once``
        False: nothing can ask an MDA what it delivered) gets one message per step
        and per commit, so its receipts are recorded before it is handed the next
        message; the stream still reads ahead into the spool, bounded by ``_full``.
        """
        stagers = {s.name: v for s in job.sinks if (v := staging(s)) is not None}
        hold = len(stagers) < len(job.sinks)
        blind = any(not s.exactly_once for s in job.sinks if s.name not in stagers)
        return _Flow(
            stagers=stagers,
            hold=hold,
            commit_messages=1 if blind else job.batch_messages if hold else job.commit_messages,
            commit_bytes=job.batch_bytes if hold else job.commit_bytes,
            last_commit=self._clock.monotonic(),
            group=1 if blind else job.stage_messages,
        )

    async def _step(self, run: RunState, flow: _Flow, final: bool = False) -> None:
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

    @staticmethod
    def _full(job: AccountJob, flow: _Flow) -> bool:
        """Whether the stream must wait for the step: memory stays bounded by
        ``batch_bytes`` and ``pending_messages``, not by the mailbox's size."""
        return (
            flow.received_bytes > job.batch_bytes or len(flow.received) > job.pending_messages
        )

    def _ready(self, job: AccountJob, flow: _Flow) -> bool:
        """Whether enough has arrived to be worth a step: tiny groups cost a thread
        hand-off and a dedup query each, while the disk is free anyway."""
        return (
            len(flow.received) >= min(job.stage_min_messages, flow.group)
            or flow.received_bytes >= job.stage_min_bytes
            or self._clock.monotonic() - flow.last_commit >= job.commit_seconds
        )

    @staticmethod
    def _take(job: AccountJob, flow: _Flow) -> list[tuple[ListedMessage, SpooledMessage]]:
        """The oldest received messages, up to ``flow.group`` / ``stage_bytes`` (≥ 1)."""
        count = size = 0
        for _, message in flow.received:
            if count and (count >= flow.group or size + message.size > job.stage_bytes):
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
        self, run: RunState, flow: _Flow, group: list[tuple[ListedMessage, SpooledMessage]]
    ) -> None:
        """Dedup ``group``, then hand the fresh messages to every staging sink."""
        job = run.job
        fresh, repeats = await self._split_known_content(run, flow, group)
        flow.taken += len(group)
        flow.repeats.extend(repeats)
        deliveries = [
            Delivery(job.name, entry.key, delivery_key(job.name, msg.sha256), msg)
            for entry, msg in fresh
        ]
        flow.deliveries.extend(deliveries)
        flow.uncommitted_bytes += sum(d.message.size for d in deliveries)
        try:
            for name, sink in flow.stagers.items():
                if name in run.failed_sinks:
                    continue
                todo = self._owed(run, flow, name, deliveries)
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
        self._report(run, flow)

    async def _fail(self, run: RunState, flow: _Flow, sink: Sink, exc: PopkeepError) -> None:
        """``sink`` failed: skip it for the rest of the run (no deletions), drop its staging."""
        log.info("account %s: sink %s: %s", run.job.name, sink.name, exc)  # in the pass's error
        run.failed_sinks[sink.name] = exc
        stager = flow.stagers.get(sink.name)
        if stager is not None:
            await stager.discard(flow.handles[sink.name])
            flow.handles[sink.name] = []

    async def _split_known_content(
        self, run: RunState, flow: _Flow, group: list[tuple[ListedMessage, SpooledMessage]]
    ) -> tuple[list[tuple[ListedMessage, SpooledMessage]], list[tuple[str, str, int]]]:
        """Dedup by content: (messages to deliver, (uid, sha256, size) to adopt afterwards).

        Content already delivered under another UIDL (a provider re-keyed its
        mailbox, or lists the same bytes twice), or already staged this run, is
        adopted after the commit that holds its first copy, never delivered again.
        """
        fresh: list[tuple[ListedMessage, SpooledMessage]] = []
        repeats: list[tuple[str, str, int]] = []
        known = await self._store.known_hashes(run.job.name, [m.sha256 for _, m in group])
        for entry, message in group:
            original = None
            if message.sha256 in known:
                original = await self._store.find_by_hash(run.job.name, message.sha256)
            if message.sha256 in flow.hashes or (
                original is not None and original.uid != entry.key and original.sinks
            ):
                repeats.append((entry.key, message.sha256, message.size))
            else:
                flow.hashes.add(message.sha256)
                fresh.append((entry, message))
        return fresh, repeats

    async def _adopt(
        self, run: RunState, flow: _Flow, repeats: list[tuple[str, str, int]]
    ) -> None:
        for uid, sha256, size in repeats:
            original = await self._store.find_by_hash(run.job.name, sha256)
            if original is None or not original.sinks:
                continue  # its first copy failed to deliver: fetched again next run
            await self._store.adopt(run.job.name, uid, original, size, flow.sizes.get(uid))
            run.adopted += 1

    async def _commit(self, run: RunState, flow: _Flow) -> None:
        """Make everything staged (or held) since the last commit durable and recorded."""
        deliveries, repeats, taken = flow.deliveries, flow.repeats, flow.taken
        try:
            if deliveries:
                await self._deliver_fresh(run, flow, deliveries)
        finally:
            for delivery in deliveries:
                delivery.message.close()
        for uid, _, _ in repeats:
            flow.digests.pop(uid, None)
        flow.deliveries, flow.repeats, flow.found, flow.hashes = [], [], {}, set()
        flow.handles = {name: [] for name in flow.stagers}
        flow.taken = flow.uncommitted_bytes = 0
        flow.last_commit = self._clock.monotonic()
        await self._adopt(run, flow, repeats)
        run.done += taken
        if run.done >= run.job.fetch_group:  # a long pass: see popkeep.collector.memory
            release()
        self._report(run, flow)

    def _report(self, run: RunState, flow: _Flow) -> None:
        """Progress for people: fetched so far (staged or committed), not only durable."""
        if self._progress is not None:
            done = run.done + flow.taken
            octets = run.delivered_bytes + flow.uncommitted_bytes
            self._progress(run.job.name, done, run.total, octets)

    async def _deliver_fresh(self, run: RunState, flow: _Flow, deliveries: list[Delivery]) -> None:
        """Journal → every sink durable (commit or deliver) → record, in that order.

        A sink that fails keeps the receipts of what it did store (no copy twice on
        the next run); a message it refuses alone is reported and the rest of the
        group still goes to it (see :meth:`_deliver_each`).
        """
        job = run.job
        names = sink_names(job)
        intents = {
            d.uid: Intent(job.name, d.uid, d.key, d.message.sha256, d.message.size, names)
            for d in deliveries
        }
        await self._store.journal(list(intents.values()))
        receipts = {d.uid: list(flow.found.get(d.uid, ())) for d in deliveries}
        unsure: list[Intent] = []
        refused: set[str] = set()
        for sink in job.sinks:
            if sink.name in run.failed_sinks:
                continue
            try:
                outcome = await self._deliver_to(run, flow, sink, deliveries)
            except PopkeepError as exc:
                outcome = _Outcome((), (), exc)
            for delivery, receipt in outcome.done:
                receipts[delivery.uid].append(receipt)
            for delivery, refusal in outcome.refused:
                await self._refused(run, flow, sink, delivery, refusal)
                refused.add(delivery.uid)
            if outcome.error is not None:
                await self._fail(run, flow, sink, outcome.error)
                if outcome.unsure is not None and sink.exactly_once:
                    unsure.append(intents[outcome.unsure.uid])
        delivered = [
            Delivered(
                d.uid, d.message.sha256, d.message.size, tuple(receipts[d.uid]),
                flow.sizes.get(d.uid), flow.digests.pop(d.uid, None),
            )
            for d in deliveries
        ]
        await self._store.record_delivered(job.name, delivered, names, self._clock.now())
        if unsure:
            # The sink may have stored the message it was handling when it failed (a
            # timeout after the server committed): keep the intent, so the next run
            # asks the sink (Sink.find) before delivering it again.
            await self._store.journal(unsure)
        if not run.failed_sinks:
            done = [d for d in deliveries if d.uid not in refused]
            run.delivered += len(done)
            run.delivered_bytes += sum(d.message.size for d in done)

    async def _refused(
        self, run: RunState, flow: _Flow, sink: Sink, delivery: Delivery, error: MessageRefused
    ) -> None:
        """``sink`` refused one message for good: reported and remembered (see .refusals)."""
        message = delivery.message
        size = flow.sizes.get(delivery.uid, message.size)
        refusal = Refusal(delivery.uid, sink.name, size, message.sha256, str(error),
                          self._clock.now())
        await remember(self._store, run, refusal, error)

    async def _aborted(self, run: RunState, flow: _Flow, error: MessageAborted) -> None:
        """The source cut one message mid-transfer (never-ending, or larger than listed
        and than max_message_size): remembered as refused by every sink, so later runs
        leave it on the server, report it, and fetch the messages after it; ``popkeep
        retry`` tries it again (see .refusals)."""
        size = flow.sizes.get(error.key)
        if size is None:
            return
        reason = f"{error} although listed with {size} (it never ends, or its size is a lie)"
        now = self._clock.now()
        refusals = [Refusal(error.key, s.name, size, "", reason, now) for s in run.job.sinks]
        await self._store.record_refusals(run.job.name, refusals)
        run.skipped += 1

    def _owed(
        self, run: RunState, flow: _Flow, sink: str, deliveries: list[Delivery]
    ) -> list[Delivery]:
        """The deliveries ``sink`` still has to store: not held, not refused before."""
        return [
            d for d in deliveries
            if sink not in self.held_by(run, d.uid) and sink not in flow.refused.get(d.uid, ())
        ]

    async def _deliver_to(
        self, run: RunState, flow: _Flow, sink: Sink, deliveries: list[Delivery]
    ) -> _Outcome:
        """One sink's share of a commit: commit what it staged, or deliver (non-staging)."""
        stager = flow.stagers.get(sink.name)
        if stager is not None:
            handles = flow.handles[sink.name]
            try:
                receipts = await stager.commit(handles)
            except PopkeepError as exc:
                return _Outcome((), (), exc)
            return _Outcome([(h.delivery, r) for h, r in zip(handles, receipts, strict=True)])
        found: dict[str, list[Receipt]] = {}
        todo = self._owed(run, flow, sink.name, deliveries)
        todo = await self._recover(run, sink, todo, found)
        done = [(d, r) for d in deliveries for r in found.get(d.uid, ())]
        outcome = await self._deliver_each(sink, todo)
        return outcome._replace(done=[*done, *outcome.done])

    @staticmethod
    async def _deliver_each(sink: Sink, todo: list[Delivery]) -> _Outcome:
        """``sink.deliver(todo)``, going on past messages it refuses one by one.

        On a DeliveryError the receipts of what the sink stored first are kept
        (``DeliveryError.delivered``); a :class:`MessageRefused` skips that message
        and delivers the rest; any other error ends this sink's share, with the
        message in flight ``unsure``: the sink may hold it.
        """
        done: list[tuple[Delivery, Receipt]] = []
        refused: list[tuple[Delivery, MessageRefused]] = []
        while todo:
            try:
                receipts = await sink.deliver(todo)
            except DeliveryError as exc:
                held = exc.delivered[: len(todo)]
                done.extend(zip(todo, held, strict=False))
                if len(held) == len(todo):
                    return _Outcome(done, refused, exc, None)
                if isinstance(exc, MessageRefused):
                    refused.append((todo[len(held)], exc))
                    todo = todo[len(held) + 1 :]
                    continue
                return _Outcome(done, refused, exc, todo[len(held)])
            except PopkeepError as exc:
                return _Outcome(done, refused, exc, None)
            done.extend(zip(todo, receipts, strict=True))
            break
        return _Outcome(done, refused)

    async def _recover(
        self, run: RunState, sink: Sink, todo: list[Delivery], found: dict[str, list[Receipt]]
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

    async def _abandon(self, run: RunState, flow: _Flow) -> None:
        """After the stream: remove what is staged and not committed, close what is open."""
        for name, stager in flow.stagers.items():
            if flow.handles[name]:
                await stager.discard(flow.handles[name])
                flow.handles[name] = []
        for delivery in flow.deliveries:
            delivery.message.close()
        for _, message in flow.received:
            message.close()

    async def _load_known(self, run: RunState, wanted: list[ListedMessage]) -> None:
        """Read into ``run.known`` the records of the wanted messages (one fetch group)
        that are SEEN (some sinks may hold them already: :meth:`held_by`); a group of
        new mail reads nothing. Not every record of the account (issue 16 item 3)."""
        seen = [m.key for m in wanted if m.key in run.seen]
        run.known = await self._store.records(run.job.name, seen) if seen else None

    @staticmethod
    def held_by(run: RunState, uid: str) -> frozenset[str]:
        """Sinks already holding ``uid`` (partial receipts of a SEEN message; read by
        :meth:`_load_known` before the fetch)."""
        if run.known is None or uid not in run.seen:
            return frozenset()
        known = run.known.get(uid)
        return known.sinks if known is not None else frozenset()

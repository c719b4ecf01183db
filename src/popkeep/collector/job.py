"""What a collector pass works on: the job (built by ``app``), its result, and its state.

Owns: the records shared by :mod:`.core` (the pass) and :mod:`.pipeline` (fetch →
stage → commit). Must not: do I/O.

NamedTuples and a plain class rather than dataclasses: generating a dataclass's
methods costs about a millisecond per class at import, and every cron poll pays
it (``popkeep fetch`` start-up is measured, bench/README.md).
"""

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from popkeep.errors import PopkeepError
from popkeep.model import MessageState, RetentionPolicy, RunSummary, StoredMessage
from popkeep.sinks.base import Sink
from popkeep.sources.base import SessionFactory

#: Called as a fetch goes on (after each staging step and each commit): (account,
#: messages fetched so far, messages to fetch, octets fetched). For a progress bar:
#: what counts as delivered is the run's summary, written after the commits.
ProgressCallback = Callable[[str, int, int, int], None]


class AccountJob(NamedTuple):
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
    #: received-but-not-staged messages before the stream pauses: small messages
    #: must not pile up by the hundred thousand under ``batch_bytes`` while a
    #: commit runs (each costs a few hundred bytes of objects besides its octets)
    pending_messages: int = 2048
    #: the messages to fetch are described (LIST sizes) and streamed this many at a
    #: time: what a pass holds per message to fetch does not grow with the mailbox
    fetch_group: int = 10_000
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


class AccountResult(NamedTuple):
    """The run's summary and, when the run failed, the error that ended it."""

    summary: RunSummary
    error: PopkeepError | None = None
    warnings: Sequence[str] = ()
    #: seconds the server asked between logins (:attr:`SourceSession.login_interval`),
    #: None when it did not say or the pass did not log in; ``popkeep serve`` waits that long
    login_interval: float | None = None


class RunState:
    """Mutable counters of one pass; frozen into a RunSummary at the end."""

    __slots__ = (
        "_seen",
        "adopted",
        "by_state",
        "deleted",
        "delivered",
        "delivered_bytes",
        "done",
        "failed_sinks",
        "gone",
        "job",
        "known",
        "listed",
        "live",
        "live_octets",
        "pending_keys",
        "server_count",
        "server_octets",
        "skipped",
        "total",
        "unsized",
        "warnings",
    )

    def __init__(self, job: AccountJob) -> None:
        self.job = job
        #: state → uids of every message the store knows for this account (see :meth:`know`)
        self.by_state: dict[MessageState, list[str]] = {}
        #: how many uids are SEEN or DELIVERED: on the server at the last run, as far as
        #: we know
        self.live = 0
        self._seen: set[str] | None = None
        #: full records, loaded only when partial receipts matter (see Pipeline.held_by)
        self.known: dict[str, StoredMessage] | None = None
        self.listed = 0
        #: the sum of the live messages' sizes as LIST gave them when collected (what
        #: STAT should say if nothing changed); None when unknown
        self.live_octets: int | None = None
        #: live messages without a recorded LIST size (marked collected by ``popkeep
        #: import-state``, or collected before popkeep recorded it)
        self.unsized = 0
        self.delivered = 0
        self.delivered_bytes = 0
        self.adopted = 0
        self.deleted = 0
        self.gone = 0
        self.skipped = 0
        self.server_count = 0
        self.server_octets = 0
        self.total = 0
        self.done = 0
        #: delivery keys journaled by an earlier run that never recorded its receipts
        self.pending_keys: frozenset[str] = frozenset()
        #: sinks that failed this run (open or deliver): skipped from then on, no deletions
        self.failed_sinks: dict[str, PopkeepError] = {}
        self.warnings: list[str] = []

    @property
    def sink_failed(self) -> bool:
        return bool(self.failed_sinks)

    def know(self, by_state: dict[MessageState, list[str]]) -> None:
        """What the store knows of the account now: state → uids."""
        self.by_state = by_state
        self.live = len(by_state.get(MessageState.SEEN, ())) + len(
            by_state.get(MessageState.DELIVERED, ())
        )
        self._seen = None

    def settle(self) -> None:
        """The diff is done: forget every state's uids but SEEN ones (what the fetch
        asks about: ``Pipeline.held_by``), so that a pass that goes on to fetch or
        delete does not hold a uid per message the store knows (issue 16 item 3).
        The counts stay; :meth:`know` fills the states again."""
        seen = self.by_state.get(MessageState.SEEN)
        self.by_state = {} if seen is None else {MessageState.SEEN: seen}

    def live_uids(self) -> Iterator[str]:
        """The uids SEEN or DELIVERED, without building a set of them."""
        return itertools.chain(
            self.by_state.get(MessageState.SEEN, ()), self.by_state.get(MessageState.DELIVERED, ())
        )

    @property
    def seen(self) -> set[str]:
        """The uids SEEN (some sinks may hold them), as a set; built on first use."""
        if self._seen is None:
            self._seen = set(self.by_state.get(MessageState.SEEN, ()))
        return self._seen


def groups(uids: Iterable[str], size: int) -> Iterator[list[str]]:
    """``uids`` in lists of ``size`` (the last one shorter)."""
    it = iter(uids)
    while group := list(itertools.islice(it, size)):
        yield group


class PackedUids:
    """Many uids, in order, held as one string per group of ``group`` uids (a few
    bytes a uid instead of a str object each: 200,000 due for deletion are ≈ 5 MB, not
    ≈ 17 MB; issue 16 item 3). A uid never holds a newline: listings are split into
    lines before their keys are taken (RFC 1939 §7, and the store's
    ``uids_by_state`` relies on the same)."""

    __slots__ = ("_count", "_groups")

    def __init__(self, uids: Iterable[str], group: int) -> None:
        self._groups: list[str] = []
        self._count = 0
        for batch in groups(uids, group):
            self._groups.append("\n".join(batch))
            self._count += len(batch)

    def __len__(self) -> int:
        return self._count

    def groups(self) -> Iterator[list[str]]:
        """The uids, one group (a fresh list) at a time."""
        return (packed.split("\n") for packed in self._groups)


def sink_names(job: AccountJob) -> tuple[str, ...]:
    return tuple(sink.name for sink in job.sinks)

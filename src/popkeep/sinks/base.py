"""The :class:`Sink` protocol, the contract every destination implements.

Owns: what "delivered" means. A sink's :meth:`Sink.deliver` returns only when
every message of the batch is durable (Maildir: file and directory fsynced; IMAP:
tagged OK to APPEND; Gmail: the API returned an id). Must not: decide anything
about retention, or build paths from server-supplied data (only ``Delivery.key``,
which popkeep derives from the content hash, may appear in a sink-side name).

Staging (optional, :class:`StagingSink`): a sink that can write a message
somewhere invisible first (Maildir: ``tmp/``) splits delivery in two, so the
collector can write each message as it arrives and make many of them durable
at once. :meth:`StagingSink.stage` writes, invisibly and not yet durably;
:meth:`StagingSink.commit` makes staged messages durable *and* visible, all or
error; :meth:`StagingSink.discard` removes what was staged and not committed.
A staged message counts for nothing: until ``commit`` returns it is neither
delivered nor findable by :meth:`Sink.find`, and a crash leaves at most an
invisible leftover (the sink documents how it is cleaned up).
"""

import functools
import hashlib
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from popkeep.model import Receipt
from popkeep.spool import SpooledMessage


def delivery_key(account: str, sha256: str) -> str:
    """Deterministic, path-safe id of (account, content): 16 hex of the account, 40 of the hash.

    The same message fetched again (after a crash, or under a new UIDL) gets the
    same key, which is what lets recovery find it in the sink.
    """
    return f"{_account_tag(account)}{sha256[:40]}"


@functools.lru_cache(maxsize=64)
def _account_tag(account: str) -> str:
    return hashlib.sha256(account.encode("utf-8")).hexdigest()[:16]


class Delivery(NamedTuple):
    """One message to store: its bytes, where it came from, and its idempotency key."""

    account: str
    uid: str  #: server unique-id: for receipts and logs only, never for names
    key: str  #: :func:`delivery_key`; hex only, safe in file names and searches
    message: SpooledMessage


class Sink(Protocol):
    """A destination. ``exactly_once`` tells whether :meth:`find` can see past deliveries."""

    name: str
    exactly_once: bool

    async def open(self) -> None:
        """Connect / create folders. Raises DeliveryError (retry) or ConfigError."""
        ...

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Store every message durably, in order; one receipt per delivery.

        On failure raise DeliveryError with ``delivered`` = the receipts of the
        leading messages that did become durable, so the failed one is
        ``batch[len(delivered)]`` and nothing after it was attempted. Raise
        :class:`~popkeep.errors.MessageRefused` when the sink refuses that one
        message for good (the caller goes on with the rest); any other error is
        about the sink, and the failed message may or may not be stored (a timeout
        after the server committed): an ``exactly_once`` sink finds it with
        :meth:`find`, and looks before it sends a message again itself.
        """
        ...

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """The receipt of an earlier delivery with this key, if the sink holds it.

        ``message`` is the re-fetched message: sinks that cannot search by key
        alone (IMAP, Gmail: Message-ID + content hash) need it.
        """
        ...

    async def close(self) -> None:
        """Release connections; never raises."""
        ...


class Staged:
    """Handle of one message a :class:`StagingSink` staged and has not committed.

    The collector reads ``delivery`` only; each sink keeps its own state in a
    subclass. ``done`` is true when staging wrote nothing because the sink
    already holds the key (committing it only yields the receipt).
    """

    __slots__ = ("delivery", "done")

    def __init__(self, delivery: Delivery, done: bool = False) -> None:
        self.delivery = delivery
        self.done = done


@runtime_checkable
class StagingSink(Sink, Protocol):
    """A sink that can write first and make durable later (see the module docstring).

    ``deliver(batch)`` must still work, and be equivalent to ``commit(stage(batch))``.
    """

    async def stage(self, batch: Sequence[Delivery]) -> list[Staged]:
        """Write each message where neither readers nor :meth:`Sink.find` see it; one
        handle per delivery, in order. Not durable. A key the sink already holds
        yields a ``done`` handle and writes nothing. Raises DeliveryError; what this
        call staged before failing is removed."""
        ...

    async def commit(self, staged: Sequence[Staged]) -> list[Receipt]:
        """Make staged messages durable and visible; one receipt per handle, in order.

        All-or-error, like :meth:`Sink.deliver`: on DeliveryError, what did become
        visible is found again by :meth:`Sink.find`, and the rest is removed."""
        ...

    async def discard(self, staged: Sequence[Staged]) -> None:
        """Remove staged, uncommitted messages (committed ones are left alone); never raises."""
        ...


def staging(sink: Sink) -> StagingSink | None:
    """``sink`` as a :class:`StagingSink`, or None when it can only ``deliver``."""
    return sink if isinstance(sink, StagingSink) else None

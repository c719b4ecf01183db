"""The :class:`Sink` protocol, the contract every destination implements.

Owns: what "delivered" means. A sink's :meth:`Sink.deliver` returns only when
every message of the batch is durable (Maildir: file and directory fsynced; IMAP:
tagged OK to APPEND; Gmail: the API returned an id). Must not: decide anything
about retention, or build paths from server-supplied data (only ``Delivery.key``,
which popkeep derives from the content hash, may appear in a sink-side name).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from popkeep.model import Receipt
from popkeep.spool import SpooledMessage


def delivery_key(account: str, sha256: str) -> str:
    """Deterministic, path-safe id of (account, content): 16 hex of the account, 40 of the hash.

    The same message fetched again (after a crash, or under a new UIDL) gets the
    same key, which is what lets recovery find it in the sink.
    """
    acct = hashlib.sha256(account.encode("utf-8")).hexdigest()[:16]
    return f"{acct}{sha256[:40]}"


@dataclass(frozen=True, slots=True)
class Delivery:
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
        """Store every message durably; one receipt per delivery, in order.

        All-or-error: on failure raise DeliveryError; messages of the batch that
        did become durable are found again by :meth:`find` during recovery.
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

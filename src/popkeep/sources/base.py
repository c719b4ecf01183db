"""The :class:`SourceSession` protocol: one authenticated session with a provider mailbox.

Owns: the shape the collector drives, in opaque message keys (str): list, describe,
retrieve, delete, commit. A key names one message across sessions as far as the
source can tell (POP3: the UIDL); whatever else addresses a message on the wire
(POP3 message numbers, IMAP sequence numbers) stays inside the source. POP3 is the
first implementation (:mod:`popkeep.sources.pop3`); ``app`` maps the account's
``type`` to it. Must not: decide what to fetch or delete, or choose where messages
are spooled (the source is built with a :data:`~popkeep.spool.SpoolFactory` by ``app``).
"""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence, Set
from typing import NamedTuple, Protocol

from popkeep.spool import SpooledMessage
from popkeep.transport.base import TLSInfo


class Listing(NamedTuple):
    """What listing the mailbox tells: its size, and the key of every message.

    Facts about single messages are not part of it: a POP3 server reports sizes in a
    second full listing (LIST), which a poll with nothing new never needs; the
    collector asks them only for the messages it acts on (:meth:`SourceSession.describe`).
    """

    messages: int  #: in the mailbox (POP3: STAT, RFC 1939 §5; not ``count``: a tuple method)
    octets: int  #: their total size, as the server counts it
    keys: Set[str]  #: every message's key, in the source's order; no key twice
    #: entries of the listing left out because the server got them wrong (unparsable,
    #: a message number twice or beyond the count, a key it could not tell apart):
    #: their messages are neither fetched nor deleted, and the listing is incomplete
    skipped: int = 0


class ListedMessage(NamedTuple):
    """One message as the source describes it.

    A NamedTuple, not a dataclass: tuples are several times cheaper to create, and
    a big fetch describes thousands of messages (see :mod:`popkeep.model`).
    """

    key: str
    size: int  #: octets, as the source reports them (POP3: LIST, RFC 1939 §5)
    #: what the collector may compare across sessions besides the key (POP3: the
    #: header digest of :mod:`popkeep.headers`, from TOP n 0), when asked for and the
    #: source can tell; None when it cannot
    identity: str | None = None
    #: with ``verify``, for a key that names no more than ``identity`` and ``size``
    #: (POP3 without a unique-id of its own: the identity is in the key, so it proves
    #: nothing): the sha256 of the whole message as retrieved now, to compare with
    #: the one recorded; "" when it could not be retrieved (never equal to one)
    content: str | None = None


class SourceSession(Protocol):
    @property
    def tls(self) -> TLSInfo | None:
        """The TLS state of the connection (``popkeep check`` shows it)."""
        ...

    @property
    def capabilities(self) -> dict[str, list[str]]:
        """What the server advertises (POP3: CAPA, RFC 2449), for ``popkeep check``."""
        ...

    @property
    def login_interval(self) -> float | None:
        """Seconds the server asked between two logins, when it said (POP3: CAPA
        ``LOGIN-DELAY``); ``popkeep serve`` polls no sooner. None when it did not."""
        ...

    async def list_mailbox(self) -> Listing:
        """The mailbox as it is now; the keys later calls may name."""
        ...

    async def describe(
        self, keys: Sequence[str], *, identify: bool = False, verify: bool = False
    ) -> list[ListedMessage]:
        """The facts about ``keys`` (listed by :meth:`list_mailbox`), in retrieval order;
        with ``identify``, their :attr:`ListedMessage.identity` too where the source
        can tell (it may cost a round of requests: ask only for messages acted on);
        with ``verify``, their :attr:`ListedMessage.content` where the key proves
        nothing beyond the identity (it may retrieve them: ask only before deleting).
        A message the source cannot describe consistently is left out (the caller
        neither fetches nor deletes it on this listing)."""
        ...

    def retrieve(self, keys: Sequence[str]) -> AsyncIterator[tuple[str, SpooledMessage]]:
        """(key, message) in the order asked, streamed into the source's spool.

        Messages the server refuses are skipped and, after all others, reported by
        one MessageError.
        """
        ...

    async def delete(self, keys: Sequence[str]) -> list[str]:
        """Mark for deletion; returns the keys the server refused to mark.

        Nothing is deleted unless :meth:`commit` returns True.
        """
        ...

    async def commit(self) -> bool:
        """End the session; True only when the server confirmed that the deletions
        took effect (POP3: +OK to QUIT, RFC 1939 §6, UPDATE state)."""
        ...

    async def close(self) -> None:
        """Close without committing (nothing marked is deleted). Never raises."""
        ...


SessionFactory = Callable[[], Awaitable[SourceSession]]

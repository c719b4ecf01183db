"""Value types shared by every layer. No I/O, no behaviour beyond derived properties."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple


class ServerStat(NamedTuple):
    """STAT: how many messages and octets the maildrop holds."""

    messages: int  #: (not ``count``: a tuple's method has that name)
    octets: int


class MessageState(StrEnum):
    """Where one server message (account, uid) is in its life.

    docs/architecture.md, "Message state", draws the transitions.
    """

    SEEN = "seen"  #: listed, not yet delivered to every sink
    DELIVERED = "delivered"  #: durable in every sink of the account
    DELETE_PENDING = "delete_pending"  #: DELE sent, QUIT +OK not yet seen
    DELETED = "deleted"  #: QUIT returned +OK after our DELE
    GONE = "gone"  #: vanished from the server without us (another device)


_ON_SERVER = frozenset({MessageState.SEEN, MessageState.DELIVERED, MessageState.DELETE_PENDING})


class StoredMessage(NamedTuple):
    """What the state store knows about one server message.

    NamedTuples here, not dataclasses: generating a dataclass's methods costs about
    a millisecond per class at import, and ``popkeep fetch`` start-up is measured;
    tuples are also several times cheaper to create.
    """

    account: str
    uid: str
    size: int
    state: MessageState
    sha256: str | None = None
    first_retrieved_at: datetime | None = None
    deleted_at: datetime | None = None
    gone_at: datetime | None = None
    sinks: frozenset[str] = frozenset()  #: sinks holding it durably
    #: the size LIST gave when it was collected (``size`` is the octets retrieved);
    #: None for messages collected before popkeep recorded it
    listed_size: int | None = None
    #: its header digest (popkeep.headers) when collected; None when not recorded
    digest: str | None = None

    @property
    def on_server(self) -> bool:
        """Whether the message is (as far as we know) still in the maildrop."""
        return self.state in _ON_SERVER


class RetentionPolicy(NamedTuple):
    """What stays on the provider's server. ``delete_after=None`` means never."""

    delete_after: timedelta | None = None
    server_quota: int | None = None  #: octets; enables the high/low water marks
    high_water: float = 0.9
    low_water: float = 0.7


class Receipt(NamedTuple):
    """Proof that one sink holds one message durably."""

    sink: str
    ref: str  #: sink-specific locator (Maildir file name, APPENDUID, Gmail id …)


class RunSummary(NamedTuple):
    """The outcome of one collector pass over one account."""

    account: str
    started_at: datetime
    finished_at: datetime
    outcome: str  #: "ok" or the error class name
    error: str | None = None
    listed: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    deleted: int = 0
    gone: int = 0
    skipped: int = 0  #: messages left on the server because they cannot be collected
    server_count: int = 0
    server_octets: int = 0
    adopted: int = 0  #: known content seen under a new UIDL (dedup by hash)

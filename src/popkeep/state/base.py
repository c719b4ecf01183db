"""The :class:`StateStore` protocol, and the :class:`AccountLocks` every store provides.

Owns: the durable record of each (account, uid): its state (docs/architecture.md,
"Message state"), size, sha256, first_retrieved_at, per-sink receipts; the intent journal;
the run history; and the per-account lock (one session per mailbox). Every method
that writes is one transaction. Nothing outside ``popkeep.state`` writes SQL.
Must not: talk to servers or sinks, or decide retention.

Stores are synchronous. **Async code calls a store only through**
:class:`popkeep.state.asyncstore.AsyncStore`: inside a running loop each call runs
on one dedicated thread, in order, so a commit's fsync (or a networked store's
round trip) never stalls the loop, and a cancelled caller never cuts a
transaction in half; with no loop (a pass driven by hand) the call runs at once.
Synchronous code (``status``, ``schedule``, ``plan``, a worker thread) calls the
store directly. The lock is taken before any loop.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import NamedTuple, Protocol

from popkeep.model import MessageState, Receipt, RunSummary, StoredMessage

#: the runs each account keeps (:meth:`StateStore.record_run`): what ``popkeep
#: status`` (the last run), the dashboard's History (the last 50) and the alerts (the
#: start of a failure streak) read, with room to spare; at a 1-minute interval about
#: 100 minutes of passes. A service polling 1,000 accounts every minute keeps about
#: 100,000 rows instead of adding 1.4 million a day.
RUNS_KEPT = 100

#: the settled alerts (cleared, both notices told) each account keeps
#: (:meth:`StateStore.alert_told`): the dashboard's History shows the latest 50; an
#: account whose server fails now and then must not grow the table (nor the query of
#: its open alerts, asked after every pass) without end
ALERTS_KEPT = 100


class Intent(NamedTuple):
    """Journaled before delivering: "uid with this content is about to go to these sinks"."""

    account: str
    uid: str
    key: str
    sha256: str
    size: int
    sinks: tuple[str, ...]


class Delivered(NamedTuple):
    """A message that now holds receipts (possibly from a subset of the account's sinks)."""

    uid: str
    sha256: str
    size: int
    receipts: tuple[Receipt, ...]
    listed_size: int | None = None  #: what LIST said (StoredMessage.listed_size)
    digest: str | None = None  #: its header digest (StoredMessage.digest)


class Collected(NamedTuple):
    """A message already collected by other means: by the mail client popkeep takes
    over from (``popkeep import-state``), or in the user's words (``popkeep
    baseline``). :meth:`StateStore.mark_collected` records it as delivered without
    fetching it."""

    uid: str  #: its key: the server's unique-id (RFC 1939 §7), as a listing gives it
    #: when it was first collected (the retention clock); None: when it is marked
    first_retrieved_at: datetime | None = None
    listed_size: int | None = None  #: the size LIST gives for it, when known
    #: its ``TOP n 0`` header digest (:func:`popkeep.headers.header_digest`), when known
    digest: str | None = None


class Refusal(NamedTuple):
    """A sink refused this message for good (``MessageRefused``): not retried by
    later runs until the user asks (``popkeep retry``). ``size`` tells a message
    reusing the uid apart."""

    uid: str
    sink: str
    size: int
    sha256: str
    reason: str
    refused_at: datetime


class Alert(NamedTuple):
    """One condition of an account popkeep told (or is telling) the user about.

    ``(account, condition, raised_at)`` identifies it. ``since``: when the condition
    began (a failure streak's first failed run; may be before ``raised_at``).
    ``details``: the facts the notice states, already printable, never a secret.
    A notice time that is None is owed: the alert's intent (see
    :meth:`StateStore.open_alerts`)."""

    account: str
    condition: str
    raised_at: datetime
    since: datetime
    details: str
    raised_sent_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_sent_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Raised and not yet cleared."""
        return self.cleared_at is None


def retired_key(uid: str, now: datetime) -> str:
    """The key a record moves to when its uid is reused: ``"<uid> retired <time>"``.

    A UIDL is 1-70 printable characters without spaces (RFC 1939 §7), so no
    server's uid equals a retired key, and the old uid stays readable in it.
    """
    return f"{uid} retired {now.isoformat(timespec='microseconds')}"


class AccountTotals(NamedTuple):
    """What ``popkeep status`` shows for one account."""

    messages: int  #: every known message, all states
    delivered: int  #: ever delivered to every sink (first_retrieved_at set)
    on_server: int  #: seen, delivered or delete_pending: still in the maildrop
    on_server_bytes: int  #: sum of their sizes
    deleted: int  #: deleted by us (QUIT +OK)
    gone: int  #: vanished without us (another device)


class DeliveredRecord(NamedTuple):
    """One message ever delivered to every sink: what ``popkeep plan --from-state``
    measures the mail rate, the sizes and the server usage from."""

    first_retrieved_at: datetime
    size: int
    on_server: bool  #: seen, delivered or delete_pending: still in the maildrop


class AccountLocks(Protocol):
    """One collector per mailbox: two sessions of one account could both deliver a
    message before either records it.

    The lock is part of the store because it must reach every process (and, with a
    shared store, every machine) that could collect the account. It can be taken
    without opening the store's database: ``popkeep fetch`` locks its accounts and
    starts logging in before the database is opened (bench/README.md, "Round 7"),
    so ``app`` builds the locks of the configured store on their own, and a store
    also answers :meth:`lock` itself.

    - SQLite (:mod:`popkeep.state.filelock`): an exclusive ``flock`` on a file
      beside the database; the kernel releases it when its holder dies.
    - A PostgreSQL store would use a session-level advisory lock
      (``pg_try_advisory_lock`` on a key derived from the account name) on a
      connection of its own, held for the block; the server releases it when that
      connection ends, so a dead holder (process or machine) frees it too.
    """

    def lock(self, account: str) -> AbstractContextManager[bool]:
        """Hold ``account``'s lock for a ``with`` block, never waiting for it.

        Yields True when held, False when another holder has it (another process or
        machine, or another :meth:`lock` of the same account here: not reentrant).
        Released on leaving the block, and by the system when the holder dies.
        Raises StateError when the lock cannot be taken or checked at all.
        """
        ...


class StateStore(AccountLocks, Protocol):
    def messages(self, account: str) -> dict[str, StoredMessage]:
        """Every known message of the account, by uid (all states)."""
        ...

    def records(self, account: str, uids: Sequence[str]) -> dict[str, StoredMessage]:
        """The records of those of ``uids`` the account knows (all states), by uid."""
        ...

    def delivered_oldest_first(self, account: str) -> Iterator[StoredMessage]:
        """The account's DELIVERED messages, oldest ``first_retrieved_at`` first (None
        last, ties by uid): the order :func:`popkeep.retention.doomed` takes them in.
        Streamed (a pass deciding for 200,000 messages holds none of their records):
        consume it before writing to the store again (what a write changes may or may
        not be seen); from async code, inside
        :meth:`~popkeep.state.asyncstore.AsyncStore.run`, on the store's thread."""
        ...

    def uids_by_state(self, account: str) -> dict[MessageState, list[str]]:
        """state → uids of every known message of the account (states with none left out).

        What a poll starts from: the few DELETE_PENDING and SEEN uids are at hand
        without a Python pass over all of them.
        """
        ...

    def known_hashes(self, account: str, hashes: Sequence[str]) -> set[str]:
        """Which of ``hashes`` some message of the account already has (one query per batch)."""
        ...

    def find_by_hash(self, account: str, sha256: str) -> StoredMessage | None:
        """A message of the account already holding this content, preferring delivered ones."""
        ...

    def journal(self, intents: Sequence[Intent]) -> None:
        """Record intents (replacing any for the same account and uid)."""
        ...

    def pending_intents(self, account: str) -> list[Intent]:
        ...

    def record_delivered(
        self, account: str, delivered: Sequence[Delivered], all_sinks: Sequence[str], now: datetime
    ) -> None:
        """One transaction: add receipts, clear the intents of these uids, and set state
        DELIVERED (first_retrieved_at = now unless already set) for those whose receipts
        now cover ``all_sinks``; the rest stay SEEN with their partial receipts."""
        ...

    def record_refusals(self, account: str, refusals: Sequence[Refusal]) -> None:
        """Remember refusals (replacing any for the same account, uid and sink)."""
        ...

    def refusals(self, account: str) -> list[Refusal]:
        """Every refusal remembered for the account, oldest first."""
        ...

    def forget_refusals(self, account: str, uids: Sequence[str] = ()) -> int:
        """Forget the account's refusals (of ``uids`` only, when given): the next run
        tries those messages again. Returns how many were forgotten."""
        ...

    def adopt(
        self, account: str, uid: str, original: StoredMessage, size: int,
        listed_size: int | None = None,
    ) -> None:
        """Register ``uid`` as the same content as ``original`` (provider re-keyed its
        mailbox): receipts, sha256, header digest and first_retrieved_at are copied;
        ``listed_size`` is what LIST gives for ``uid``; the new uid is DELIVERED when
        the copied receipts cover the original's sinks, else SEEN."""
        ...

    def mark_collected(
        self, account: str, collected: Sequence[Collected], sinks: Sequence[str],
        source: str, now: datetime,
    ) -> int:
        """One transaction: each uid of ``collected`` the account has no record of
        becomes DELIVERED without being fetched, with a receipt for each of ``sinks``
        whose ref is ``source`` (what vouches for it, e.g. ``"imported from
        fetchmail"``), so retention treats it like any message delivered everywhere;
        ``first_retrieved_at`` as given, else ``now``; its size is ``listed_size``
        (0 when unknown), its header digest ``digest``, and it has no content hash.
        A uid the account knows already (in any state) keeps its record. Returns how
        many were marked."""
        ...

    def live_octets(self, account: str) -> tuple[int, int]:
        """(the sum of ``listed_size`` over the account's SEEN and DELIVERED messages,
        how many of those have none recorded): what STAT should report when the
        server holds exactly these messages, unchanged."""
        ...

    def record_listed_sizes(
        self, account: str, sizes: Mapping[str, int], digests: Mapping[str, str] | None = None
    ) -> None:
        """uid → the size LIST gives now, for messages checked to be the ones
        collected (their header digest matched) whose size the server changed, or
        that had none recorded; ``digests``: uid → a header digest to record for
        messages that had none (a recorded digest is kept)."""
        ...

    def retire(self, account: str, uids: Sequence[str], now: datetime) -> dict[str, str]:
        """The server gave these uids to new messages (a reused UIDL): each record
        (with its receipts and refusals, so its history and content hash stay) moves
        to a derived key, :func:`retired_key`, and is GONE from the server (DELETED
        stays DELETED); the uid is free for the new message. One transaction.
        Returns uid → the key it was retired under."""
        ...

    def mark_delete_pending(self, account: str, uids: Iterable[str], now: datetime) -> None:
        ...

    def mark_deleted(self, account: str, uids: Iterable[str], now: datetime) -> None:
        ...

    def revert_delete_pending(self, account: str, uids: Iterable[str]) -> None:
        """DELE did not take effect (no QUIT +OK): back to DELIVERED."""
        ...

    def mark_gone(self, account: str, uids: Iterable[str], now: datetime) -> None:
        ...

    def record_run(self, summary: RunSummary) -> None:
        """Add ``summary`` to the account's run history and, in the same transaction,
        forget its runs older than the newest :data:`RUNS_KEPT`, except the first run
        of its current failure streak (:meth:`failing_since` stays true however long
        the streak). The cost does not grow with the history."""
        ...

    def runs(self, account: str | None = None, limit: int = 50) -> list[RunSummary]:
        """Most recent first."""
        ...

    def delivered_history(self, account: str | None = None) -> list[DeliveredRecord]:
        """Every message ever delivered to all its sinks (first_retrieved_at set), of
        ``account`` or of every account, in no particular order."""
        ...

    def accounts(self) -> list[str]:
        """Every account with messages or runs on record, sorted."""
        ...

    def account_totals(self, account: str) -> AccountTotals:
        """Counts for ``popkeep status``; all zero for an unknown account."""
        ...

    def failing_since(self, account: str) -> datetime | None:
        """Start of the account's current streak of failed runs: the first run after
        its last ``ok`` one (or its first run ever), None when the latest run is ok or
        there is none."""
        ...

    def open_alerts(self, account: str) -> list[Alert]:
        """The account's alerts still active, or whose clearing notice is owed, oldest
        first. Fully settled alerts (cleared and told) are history, not returned."""
        ...

    def recent_alerts(self, account: str, limit: int = 20) -> list[Alert]:
        """The account's alerts, settled ones included, most recently raised first, at
        most ``limit``: what the dashboard's History page shows."""
        ...

    def raise_alert(self, alert: Alert) -> bool:
        """Record ``alert`` as raised (its notice owed), unless its condition is already
        active for the account. Returns whether it was recorded."""
        ...

    def clear_alert(self, account: str, condition: str, now: datetime) -> bool:
        """The active alert of ``condition`` is cleared at ``now`` (its clearing notice
        owed). Returns whether one was active."""
        ...

    def alert_told(self, alert: Alert, cleared: bool, now: datetime) -> None:
        """The raising (or, with ``cleared``, the clearing) notice of ``alert`` is durable
        in the account's mailbox: no longer owed. The account's settled alerts beyond
        the newest :data:`ALERTS_KEPT` (by raising time) are forgotten then."""
        ...

    def close(self) -> None:
        ...

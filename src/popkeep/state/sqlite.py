"""The default state store: one SQLite file (WAL, synchronous=FULL).

Owns: the on-disk record behind :class:`popkeep.state.base.StateStore` — schema
migrations (``PRAGMA user_version``, see :mod:`popkeep.state.migrations`), time
encoding (UTC ISO-8601 text in, timezone-aware datetimes out) and the translation
of every ``sqlite3`` error into :class:`~popkeep.errors.StateError`.
Must not: talk to servers or sinks, or decide retention.

Durability: ``synchronous=FULL`` makes each commit durable before the call
returns, so a receipt is on disk before the collector sends a DELE that relies
on it. Every writing method is exactly one transaction (``BEGIN IMMEDIATE`` …
``COMMIT``), so a crash leaves either all or none of it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from popkeep.errors import StateError
from popkeep.model import MessageState, RunSummary, StoredMessage
from popkeep.state.base import (
    ALERTS_KEPT,
    RUNS_KEPT,
    AccountTotals,
    Alert,
    Collected,
    Delivered,
    DeliveredRecord,
    Intent,
    Refusal,
    retired_key,
)
from popkeep.state.filelock import FileLocks
from popkeep.state.migrations import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 30.0  #: seconds to wait for another process's write lock
_CHUNK = 2000  #: rows read at a time by a stream (delivered_oldest_first)
_SEP = "\x1f"  #: char(31): separates sink names in group_concat (never in a config name)
_STATES = {state.value: state for state in MessageState}
_ON_SERVER = ("seen", "delivered", "delete_pending")

_MESSAGE_COLUMNS = (
    "uid, size, state, sha256, first_retrieved_at, deleted_at, gone_at, sinks,"
    " listed_size, header_digest"
)
_REFRESH_SINKS = """
    UPDATE messages SET sinks = (
        SELECT group_concat(sink, char(31)) FROM (
            SELECT sink FROM receipts
             WHERE receipts.account = messages.account AND receipts.uid = messages.uid
             ORDER BY sink))
     WHERE account = ? AND uid = ?
"""
_UPSERT_MESSAGE = """
    INSERT INTO messages (account, uid, size, sha256, state) VALUES (?, ?, ?, ?, 'seen')
    ON CONFLICT (account, uid) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256
"""
_UPSERT_RECEIPT = """
    INSERT INTO receipts (account, uid, sink, ref, delivered_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (account, uid, sink) DO UPDATE SET ref = excluded.ref
"""
_ALERT_COLUMNS = (
    "account, condition, raised_at, since, details, raised_sent_at, cleared_at, cleared_sent_at"
)
_RUN_COLUMNS = (
    "account, started_at, finished_at, outcome, error, listed, delivered, delivered_bytes,"
    " deleted, gone, skipped, server_count, server_octets, adopted"
)


def _encode_time(moment: datetime) -> str:
    """UTC ISO-8601 text; naive datetimes are refused (they would be ambiguous)."""
    if moment.tzinfo is None:
        raise StateError(f"refusing to store a naive datetime {moment!r}: times must be aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _decode_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _alerts(rows: list[Any]) -> list[Alert]:
    return [
        Alert(acct, condition, datetime.fromisoformat(raised), datetime.fromisoformat(since),
              details, _decode_time(sent), _decode_time(cleared), _decode_time(told))
        for acct, condition, raised, since, details, sent, cleared, told in rows
    ]  # fmt: skip


class SQLiteStore:
    """A :class:`~popkeep.state.base.StateStore` in one SQLite file.

    Safe to share between threads (calls are serialised by a lock); several
    processes may open the same file (WAL; writers wait up to ``BUSY_TIMEOUT``).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        """Use :meth:`open`; this wraps an already migrated connection."""
        self._conn = conn
        self._path = path
        self._lock = threading.Lock()
        # messages() results by account, valid while nobody writes: our own writes
        # clear it; other connections' commits change PRAGMA data_version.
        self._cache: dict[str, dict[str, StoredMessage]] = {}
        self._data_version = -1
        self._writes = 0  #: our own write transactions so far

    # -- lifecycle ----------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, read_only: bool = False) -> SQLiteStore:
        """Open (creating if missing, directories 0700, file 0600) and migrate.

        ``read_only`` (``popkeep plan --from-state``): the file must exist; nothing is
        created, migrated or written (a write raises StateError).
        Raises StateError if the file is not a database, is locked beyond the busy
        timeout, or carries a schema version newer than this popkeep knows.
        """
        if read_only:
            return cls._open_read_only(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise StateError(f"state database {path}: cannot create: {exc.strerror}") from exc
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StateError(f"state database {path}: cannot open: {exc}") from exc
        store = cls(conn, path)
        try:
            store._configure()
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _open_read_only(cls, path: Path) -> SQLiteStore:
        if not path.is_file():
            raise StateError(f"{path}: no state database here")
        try:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True,
                timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise StateError(f"state database {path}: cannot open: {exc}") from exc
        store = cls(conn, path)
        try:
            with store._translate("read the schema version"):
                store._check_version(int(conn.execute("PRAGMA user_version").fetchone()[0]))
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection; never raises."""
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:  # pragma: no cover - close of a broken handle
                log.warning("state database %s: error on close", self._path, exc_info=True)

    @property
    def path(self) -> Path:
        return self._path

    def lock(self, account: str) -> AbstractContextManager[bool]:
        """The account's lock (:class:`~popkeep.state.filelock.FileLocks` beside this file)."""
        return FileLocks(self._path).lock(account)

    @property
    def schema_version(self) -> int:
        with self._translate("read the schema version"):
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _configure(self) -> None:
        with self._translate("configure"):
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("state database %s: journal_mode is %s, not WAL", self._path, mode)
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

    def _migrate(self) -> None:
        """Apply each missing migration step in its own transaction."""
        with self._translate("migrate"):
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        self._check_version(version)
        while version < SCHEMA_VERSION:
            with self._transaction("migrate") as cur:
                # Re-read inside the write lock: another process may have migrated.
                version = int(cur.execute("PRAGMA user_version").fetchone()[0])
                self._check_version(version)
                if version >= SCHEMA_VERSION:
                    break
                for statement in MIGRATIONS[version]:
                    cur.execute(statement)
                cur.execute(f"PRAGMA user_version = {version + 1}")
            log.info("state database %s: migrated to schema %d", self._path, version + 1)
            version += 1

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state database {self._path} has schema version {version}, newer than "
                f"this popkeep understands ({SCHEMA_VERSION}); upgrade popkeep"
            )

    # -- plumbing -----------------------------------------------------------------

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        """Turn sqlite3 errors into StateError naming the file and the operation."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"state database {self._path}: cannot {doing}: {exc}") from exc

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Cursor]:
        """One write transaction: BEGIN IMMEDIATE … COMMIT, ROLLBACK on any error."""
        with self._lock, self._translate(doing):
            cur = self._conn.cursor()
            self._cache.clear()
            self._writes += 1
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back on its own (SQLITE_FULL, IOERR).
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _reading(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._translate(doing):
            yield self._conn

    # -- messages -----------------------------------------------------------------

    def messages(self, account: str) -> dict[str, StoredMessage]:
        """Every known message of the account, by uid (all states); a fresh dict.

        One query without joins; repeated calls with no write in between (by any
        process) reuse the previous result.
        """
        with self._reading("read messages") as conn:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._cache.clear()
                self._data_version = version
            cached = self._cache.get(account)
            if cached is not None:
                return dict(cached)
            writes = self._writes
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE account = ?",  # noqa: S608
                (account,),
            )
            # Built as SQLite steps through the rows: no list of every row beside the
            # result (200,000 messages: tens of MB less at the peak; issue 16 item 3).
            result = self._build(account, rows)
        with self._lock:
            if self._data_version == version and self._writes == writes:
                self._cache[account] = result
        return dict(result)

    def uids_by_state(self, account: str) -> dict[MessageState, list[str]]:
        """state → uids, built from one concatenated string per state.

        SQLite joins the uids in C (group_concat, reading the covering index of
        schema 2) and Python splits each string once: a 20,000-message account
        costs a few milliseconds instead of 20,000 row tuples.
        """
        with self._reading("read message states") as conn:
            rows = conn.execute(
                "SELECT state, group_concat(uid, char(10)) FROM messages"
                " WHERE account = ? GROUP BY state",
                (account,),
            ).fetchall()
        return {_STATES[state]: uids.split("\n") for state, uids in rows}

    @staticmethod
    def _build(account: str, rows: Iterable[tuple[Any, ...]]) -> dict[str, StoredMessage]:
        return {message.uid: message for message in SQLiteStore._records(account, rows)}

    @staticmethod
    def _records(account: str, rows: Iterable[tuple[Any, ...]]) -> Iterator[StoredMessage]:
        """Rows of ``_MESSAGE_COLUMNS`` as records, one at a time."""
        sink_sets: dict[str | None, frozenset[str]] = {None: frozenset()}
        times: dict[str | None, datetime | None] = {None: None}
        for uid, size, state, sha256, first, deleted, gone, sinks, listed, digest in rows:
            # Batches share timestamps and sink sets: decode each distinct one once.
            if sinks not in sink_sets:
                sink_sets[sinks] = frozenset(sinks.split(_SEP))
            for stamp in (first, deleted, gone):
                if stamp not in times:
                    times[stamp] = datetime.fromisoformat(stamp)
            yield StoredMessage(
                account, uid, size, _STATES[state], sha256,
                times[first], times[deleted], times[gone], sink_sets[sinks], listed, digest,
            )  # fmt: skip

    def delivered_oldest_first(self, account: str) -> Iterator[StoredMessage]:
        """The account's DELIVERED messages, oldest ``first_retrieved_at`` first (None
        last, ties by uid), built as SQLite steps through them: nothing is held per
        message (issue 16 item 3). The store's lock is held while a chunk of rows is
        read, not while the caller works on them, so an iteration abandoned half way
        (an exception in the caller) never leaves the store locked."""
        with self._reading("read delivered messages") as conn:
            cursor = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608 - constant columns
                " WHERE account = ? AND state = 'delivered'"
                " ORDER BY first_retrieved_at IS NULL, first_retrieved_at, uid",
                (account,),
            )
        try:
            while True:
                with self._reading("read delivered messages"):
                    rows = cursor.fetchmany(_CHUNK)
                if not rows:
                    return
                yield from self._records(account, rows)
        finally:
            with self._lock:
                cursor.close()

    def records(self, account: str, uids: Sequence[str]) -> dict[str, StoredMessage]:
        """The records of those of ``uids`` the account knows, by uid."""
        found: dict[str, StoredMessage] = {}
        with self._reading("read messages") as conn:
            for start in range(0, len(uids), 500):  # stay under SQLite's parameter limit
                chunk = list(uids[start : start + 500])
                marks = ",".join("?" * len(chunk))  # placeholders only: values are bound
                rows = conn.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages"  # noqa: S608
                    f" WHERE account = ? AND uid IN ({marks})",
                    (account, *chunk),
                )
                found.update((m.uid, m) for m in self._records(account, rows))
        return found

    def known_hashes(self, account: str, hashes: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._reading("look up content hashes") as conn:
            for start in range(0, len(hashes), 500):  # stay under SQLite's parameter limit
                chunk = list(hashes[start : start + 500])
                marks = ",".join("?" * len(chunk))  # placeholders only: values are bound
                query = (
                    "SELECT DISTINCT sha256 FROM messages INDEXED BY messages_by_hash"  # noqa: S608
                    f" WHERE account = ? AND sha256 IN ({marks})"
                )
                found.update(row[0] for row in conn.execute(query, (account, *chunk)))
        return found

    def find_by_hash(self, account: str, sha256: str) -> StoredMessage | None:
        """A message of the account holding this content: ever-delivered ones first,
        then those still on the server; ties go to the earliest retrieved, then by uid."""
        # INDEXED BY: without ANALYZE statistics SQLite picks the primary key
        # (account, uid) and scans every message of the account per lookup, which
        # made a fetch of n new messages O(n²) (20,000 messages: 48 s; now 20 s).
        with self._reading("find by hash") as conn:
            row = conn.execute(
                f"""SELECT {_MESSAGE_COLUMNS} FROM messages INDEXED BY messages_by_hash
                     WHERE account = ? AND sha256 = ?
                    ORDER BY first_retrieved_at IS NULL,
                             CASE state WHEN 'delivered' THEN 0 WHEN 'delete_pending' THEN 1
                                        WHEN 'seen' THEN 2 ELSE 3 END,
                             first_retrieved_at, uid
                    LIMIT 1""",  # noqa: S608 - constant column list
                (account, sha256),
            ).fetchone()
        return None if row is None else self._build(account, [row])[row[0]]

    # -- intents ------------------------------------------------------------------

    def journal(self, intents: Sequence[Intent]) -> None:
        """Record intents (replacing any for the same account and uid), one transaction."""
        if not intents:
            return
        import json  # lazy: a poll with nothing new never needs it (start-up is measured)

        now = _encode_time(datetime.now(UTC))  # bookkeeping only, no decision uses it
        # A batch shares one or two sink lists: encode each distinct one once.
        encoded = {sinks: json.dumps(list(sinks)) for sinks in {i.sinks for i in intents}}
        rows = [
            (i.account, i.uid, i.key, i.sha256, i.size, encoded[i.sinks], now) for i in intents
        ]
        with self._transaction("journal intents") as cur:
            cur.executemany(
                """INSERT OR REPLACE INTO intents
                   (account, uid, key, sha256, size, sinks, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )

    def pending_intents(self, account: str) -> list[Intent]:
        """Intents journaled and not yet cleared by :meth:`record_delivered`, oldest first."""
        with self._reading("read intents") as conn:
            rows = conn.execute(
                """SELECT uid, key, sha256, size, sinks FROM intents
                    WHERE account = ? ORDER BY created_at, uid""",
                (account,),
            ).fetchall()
        if not rows:
            return []
        import json  # lazy, as in journal()

        return [
            Intent(account, uid, key, sha256, size, tuple(json.loads(sinks)))
            for uid, key, sha256, size, sinks in rows
        ]

    # -- deliveries ---------------------------------------------------------------

    def record_delivered(
        self, account: str, delivered: Sequence[Delivered], all_sinks: Sequence[str], now: datetime
    ) -> None:
        """One transaction: add receipts, clear the intents of these uids, and set state
        DELIVERED (first_retrieved_at = now unless already set) for those whose receipts
        now cover ``all_sinks``; the rest stay (or, if DELIVERED, fall back to) SEEN with
        their partial receipts. DELETE_PENDING, DELETED and GONE rows keep their state."""
        if not delivered:
            return
        stamp = _encode_time(now)
        required = set(all_sinks)
        with self._transaction("record deliveries") as cur:
            # A uid the table does not hold yet (the bulk of a first fetch) is inserted
            # with its final state and sinks: one statement instead of four.
            fresh = self._insert_fresh(cur, account, delivered, required, stamp)
            known = [d for d in delivered if d.uid not in fresh]
            cur.executemany(_UPSERT_MESSAGE, [(account, d.uid, d.size, d.sha256) for d in known])
            cur.executemany(
                _UPSERT_RECEIPT,
                [(account, d.uid, r.sink, r.ref, stamp) for d in delivered for r in d.receipts],
            )
            cur.executemany(
                "DELETE FROM intents WHERE account = ? AND uid = ?",
                [(account, d.uid) for d in delivered],
            )
            if known:
                self._settle_known(cur, account, known, required, stamp)
            identified = [  # the fresh rows were inserted with theirs
                (d.listed_size, d.digest, account, d.uid)
                for d in known if d.listed_size is not None or d.digest is not None
            ]
            cur.executemany(
                "UPDATE messages SET listed_size = ?, header_digest = ?"
                " WHERE account = ? AND uid = ?",
                identified,
            )

    @staticmethod
    def _settle_known(
        cur: sqlite3.Cursor,
        account: str,
        delivered: Sequence[Delivered],
        required: set[str],
        stamp: str,
    ) -> None:
        """The general path of :meth:`record_delivered` for uids already in the tables:
        refresh their sinks column from the receipts, then set DELIVERED or SEEN."""
        cur.executemany(_REFRESH_SINKS, [(account, d.uid) for d in delivered])
        # Coverage is decided in SQL (no query and no Python step per message):
        # every required sink name must appear in the refreshed ``sinks`` column.
        names = sorted(required)
        cover = " AND ".join(
            ["instr(char(31) || coalesce(sinks, '') || char(31), ?) > 0"] * len(names)
        ) or "1"
        needles = [f"{_SEP}{name}{_SEP}" for name in names]
        cur.executemany(
            f"""UPDATE messages SET state = 'delivered',
                       first_retrieved_at = coalesce(first_retrieved_at, ?)
                 WHERE account = ? AND uid = ? AND state IN ('seen', 'delivered')
                   AND {cover}""",  # noqa: S608 - only placeholders are interpolated
            [(stamp, account, d.uid, *needles) for d in delivered],
        )
        cur.executemany(
            f"""UPDATE messages SET state = 'seen'
                 WHERE account = ? AND uid = ? AND state = 'delivered'
                   AND NOT ({cover})""",  # noqa: S608 - only placeholders are interpolated
            [(account, d.uid, *needles) for d in delivered],
        )

    @staticmethod
    def _insert_fresh(
        cur: sqlite3.Cursor,
        account: str,
        delivered: Sequence[Delivered],
        required: set[str],
        stamp: str,
    ) -> set[str]:
        """Insert the rows of uids not in ``messages`` yet, as :meth:`record_delivered`
        leaves them (state, first_retrieved_at, sinks, listed_size, header_digest);
        returns those uids."""
        counts = Counter(d.uid for d in delivered)
        candidates = [d.uid for d in delivered if counts[d.uid] == 1]  # repeats: general path
        # Receipts too: a row's sinks column must list every receipt it has.
        fresh = set(candidates) - SQLiteStore._known_uids(cur, account, candidates)
        rows = []
        for d in delivered:
            if d.uid in fresh:
                sinks = sorted({r.sink for r in d.receipts})  # BINARY order = code points
                covered = required.issubset(sinks)
                rows.append((
                    account, d.uid, d.size, d.sha256,
                    "delivered" if covered else "seen", stamp if covered else None,
                    _SEP.join(sinks) or None, d.listed_size, d.digest,
                ))  # fmt: skip
        cur.executemany(
            """INSERT INTO messages
               (account, uid, size, sha256, state, first_retrieved_at, sinks, listed_size,
                header_digest)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            rows,
        )
        return fresh

    def adopt(
        self, account: str, uid: str, original: StoredMessage, size: int,
        listed_size: int | None = None,
    ) -> None:
        """Register ``uid`` as the same content as ``original``: receipts, sha256 and
        first_retrieved_at are copied. Since ``uid`` is listed on the server now, its
        state is DELIVERED if the content was ever delivered everywhere
        (``first_retrieved_at`` set), else SEEN — never DELETED/GONE."""
        state = MessageState.DELIVERED if original.first_retrieved_at else MessageState.SEEN
        first = _encode_time(original.first_retrieved_at) if original.first_retrieved_at else None
        with self._transaction("adopt a message") as cur:
            cur.execute(
                """INSERT OR REPLACE INTO messages
                   (account, uid, size, sha256, state, first_retrieved_at, listed_size,
                    header_digest)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (account, uid, size, original.sha256, state.value, first, listed_size,
                 original.digest),
            )
            cur.execute(
                """INSERT OR REPLACE INTO receipts (account, uid, sink, ref, delivered_at)
                   SELECT account, ?, sink, ref, delivered_at FROM receipts
                    WHERE account = ? AND uid = ?""",
                (uid, account, original.uid),
            )
            cur.execute(_REFRESH_SINKS, (account, uid))

    def mark_collected(
        self, account: str, collected: Sequence[Collected], sinks: Sequence[str],
        source: str, now: datetime,
    ) -> int:
        """See :meth:`StateStore.mark_collected`: rows of known uids are left alone."""
        if not collected:
            return 0
        stamp = _encode_time(now)
        names = sorted(set(sinks))  # BINARY order = code points, as record_delivered
        with self._transaction("mark messages collected") as cur:
            known = self._known_uids(cur, account, list({c.uid for c in collected}))
            fresh: dict[str, Collected] = {}
            for entry in collected:
                if entry.uid not in known:
                    fresh.setdefault(entry.uid, entry)
            cur.executemany(
                """INSERT INTO messages
                   (account, uid, size, state, first_retrieved_at, sinks, listed_size,
                    header_digest)
                   VALUES (?, ?, ?, 'delivered', ?, ?, ?, ?)""",
                [
                    (account, c.uid, c.listed_size or 0,
                     _encode_time(c.first_retrieved_at) if c.first_retrieved_at else stamp,
                     _SEP.join(names) or None, c.listed_size, c.digest)
                    for c in fresh.values()
                ],
            )
            cur.executemany(
                _UPSERT_RECEIPT,
                [(account, uid, sink, source, stamp) for uid in fresh for sink in names],
            )
        return len(fresh)

    @staticmethod
    def _known_uids(cur: sqlite3.Cursor, account: str, uids: list[str]) -> set[str]:
        """Which of ``uids`` the account has a message row or a receipt for."""
        known: set[str] = set()
        for start in range(0, len(uids), 400):  # stay under SQLite's parameter limit
            chunk = uids[start : start + 400]
            marks = ",".join("?" * len(chunk))  # placeholders only: values are bound
            query = (
                f"SELECT uid FROM messages WHERE account = ? AND uid IN ({marks})"  # noqa: S608
                f" UNION SELECT uid FROM receipts WHERE account = ? AND uid IN ({marks})"
            )
            known.update(row[0] for row in cur.execute(query, (account, *chunk) * 2))
        return known

    def live_octets(self, account: str) -> tuple[int, int]:
        """One scan of the ``messages_live_sizes`` index (schema 6)."""
        with self._reading("sum sizes") as conn:
            total, missing = conn.execute(
                "SELECT coalesce(sum(listed_size), 0), count(*) - count(listed_size)"
                " FROM messages INDEXED BY messages_live_sizes"
                " WHERE account = ? AND state IN ('seen', 'delivered')",
                (account,),
            ).fetchone()
        return int(total), int(missing)

    def record_listed_sizes(
        self, account: str, sizes: Mapping[str, int], digests: Mapping[str, str] | None = None
    ) -> None:
        if not sizes and not digests:
            return
        with self._transaction("record listed sizes") as cur:
            cur.executemany(
                "UPDATE messages SET listed_size = ? WHERE account = ? AND uid = ?",
                [(size, account, uid) for uid, size in sizes.items()],
            )
            cur.executemany(
                "UPDATE messages SET header_digest = coalesce(header_digest, ?)"
                " WHERE account = ? AND uid = ?",
                [(digest, account, uid) for uid, digest in (digests or {}).items()],
            )

    def retire(self, account: str, uids: Sequence[str], now: datetime) -> dict[str, str]:
        """Move each uid's record, receipts and refusals to :func:`retired_key` (see
        :meth:`StateStore.retire`); a row still on the server becomes GONE."""
        keys = {uid: retired_key(uid, now) for uid in uids}
        if not keys:
            return keys
        stamp = _encode_time(now)
        with self._transaction("retire reused uids") as cur:
            for table in ("messages", "receipts", "refusals"):
                cur.executemany(
                    f"UPDATE {table} SET uid = ? WHERE account = ? AND uid = ?",  # noqa: S608
                    [(key, account, uid) for uid, key in keys.items()],
                )
            cur.executemany(
                "UPDATE messages SET state = 'gone', gone_at = ? WHERE account = ?"
                " AND uid = ? AND state IN ('seen', 'delivered', 'delete_pending')",
                [(stamp, account, key) for key in keys.values()],
            )
        return keys

    # -- deletions ----------------------------------------------------------------

    def mark_delete_pending(self, account: str, uids: Iterable[str], now: datetime) -> None:
        """DELE sent for these uids. Only DELIVERED rows change: a message not held by
        every sink is never marked for deletion, whatever the caller asks."""
        self._set_state(
            account, uids, "mark delete pending",
            "state = 'delete_pending', deleted_at = ?", (_encode_time(now),),
            "state = 'delivered'",
        )  # fmt: skip

    def mark_deleted(self, account: str, uids: Iterable[str], now: datetime) -> None:
        """QUIT +OK after DELE: these uids are gone from the server because of us."""
        self._set_state(
            account, uids, "mark deleted",
            "state = 'deleted', deleted_at = ?", (_encode_time(now),),
            "state IN ('delete_pending', 'delivered')",
        )  # fmt: skip

    def revert_delete_pending(self, account: str, uids: Iterable[str]) -> None:
        """DELE did not take effect (no QUIT +OK): back to DELIVERED."""
        self._set_state(
            account, uids, "revert delete pending",
            "state = 'delivered', deleted_at = NULL", (), "state = 'delete_pending'",
        )  # fmt: skip

    def mark_gone(self, account: str, uids: Iterable[str], now: datetime) -> None:
        """These uids vanished from the server without our DELE (another device)."""
        self._set_state(
            account, uids, "mark gone",
            "state = 'gone', gone_at = ?", (_encode_time(now),), "state <> 'deleted'",
        )  # fmt: skip

    def _set_state(
        self,
        account: str,
        uids: Iterable[str],
        doing: str,
        assignments: str,
        values: tuple[str, ...],
        guard: str,
    ) -> None:
        uids = list(uids)
        if not uids:
            return
        with self._transaction(doing) as cur:
            cur.executemany(
                f"UPDATE messages SET {assignments} WHERE account = ? AND uid = ? AND {guard}",  # noqa: S608 - constant fragments only
                # a row at a time: no list of 200,000 rows (issue 16 item 3)
                ((*values, account, uid) for uid in uids),
            )

    # -- runs and totals ----------------------------------------------------------

    def record_run(self, summary: RunSummary) -> None:
        s = summary
        row = (
            s.account, _encode_time(s.started_at), _encode_time(s.finished_at), s.outcome,
            s.error, s.listed, s.delivered, s.delivered_bytes, s.deleted, s.gone, s.skipped,
            s.server_count, s.server_octets, s.adopted,
        )  # fmt: skip
        with self._transaction("record a run") as cur:
            cur.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * len(row))})",  # noqa: S608
                row,
            )
            self._prune_runs(cur, s.account)

    @staticmethod
    def _prune_runs(cur: sqlite3.Cursor, account: str) -> None:
        """Forget the account's runs beyond the newest RUNS_KEPT but the first of its
        failure streak. Walks the ``runs_by_account`` index (whose entries end with
        the id) over at most RUNS_KEPT + 2 entries: the newest one to forget, and the
        streak's first run after the newest ``ok`` one (older runs are gone already);
        deletes one row per call once the history is full."""
        oldest = cur.execute(
            """SELECT started_at, id FROM runs WHERE account = ?
                ORDER BY started_at DESC, id DESC LIMIT 1 OFFSET ?""",
            (account, RUNS_KEPT),
        ).fetchone()
        if oldest is None:
            return
        cur.execute(
            """DELETE FROM runs
                WHERE account = ?1 AND (started_at, id) <= (?2, ?3)
                  AND id IS NOT (SELECT id FROM runs
                                  WHERE account = ?1 AND started_at > coalesce(
                                        (SELECT started_at FROM runs
                                          WHERE account = ?1 AND outcome = 'ok'
                                          ORDER BY started_at DESC LIMIT 1), '')
                                  ORDER BY started_at, id LIMIT 1)""",
            (account, *oldest),
        )

    def runs(self, account: str | None = None, limit: int = 50) -> list[RunSummary]:
        """Most recent first (by start time, then insertion order)."""
        where = "" if account is None else "WHERE account = ?"
        params: tuple[object, ...] = (limit,) if account is None else (account, limit)
        with self._reading("read runs") as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} "  # noqa: S608
                "ORDER BY started_at DESC, id DESC LIMIT ?",
                params,
            ).fetchall()
        return [
            RunSummary(
                acct, datetime.fromisoformat(started), datetime.fromisoformat(finished), *rest
            )
            for acct, started, finished, *rest in rows
        ]

    def delivered_history(self, account: str | None = None) -> list[DeliveredRecord]:
        """Every message ever delivered to all its sinks (first_retrieved_at set), of
        ``account`` or of all accounts, in no particular order."""
        where = "" if account is None else " AND account = ?"
        with self._reading("read the messages table") as conn:
            rows = conn.execute(
                "SELECT first_retrieved_at, size, state FROM messages"  # noqa: S608
                f" WHERE first_retrieved_at IS NOT NULL{where}",
                () if account is None else (account,),
            ).fetchall()
        try:
            return [DeliveredRecord(datetime.fromisoformat(at), int(size), state in _ON_SERVER)
                    for at, size, state in rows]  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise StateError(
                f"state database {self._path}: unexpected data in the messages table: {exc}"
            ) from exc

    def accounts(self) -> list[str]:
        """Every account with messages or runs on record, sorted."""
        with self._reading("list accounts") as conn:
            rows = conn.execute(
                "SELECT account FROM messages UNION SELECT account FROM runs ORDER BY 1"
            ).fetchall()
        return [row[0] for row in rows]

    # -- refusals ----------------------------------------------------------------

    def record_refusals(self, account: str, refusals: Sequence[Refusal]) -> None:
        """Remember refusals (replacing any for the same account, uid and sink)."""
        if not refusals:
            return
        rows = [
            (account, r.uid, r.sink, r.size, r.sha256, r.reason, _encode_time(r.refused_at))
            for r in refusals
        ]
        with self._transaction("record refusals") as cur:
            cur.executemany(
                """INSERT OR REPLACE INTO refusals
                   (account, uid, sink, size, sha256, reason, refused_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )

    def refusals(self, account: str) -> list[Refusal]:
        """Every refusal remembered for the account, oldest first."""
        with self._reading("read refusals") as conn:
            rows = conn.execute(
                """SELECT uid, sink, size, sha256, reason, refused_at FROM refusals
                    WHERE account = ? ORDER BY refused_at, uid, sink""",
                (account,),
            ).fetchall()
        return [
            Refusal(uid, sink, size, sha256, reason, datetime.fromisoformat(at))
            for uid, sink, size, sha256, reason, at in rows
        ]

    def forget_refusals(self, account: str, uids: Sequence[str] = ()) -> int:
        """Forget the account's refusals (of ``uids`` only, when given)."""
        with self._transaction("forget refusals") as cur:
            if not uids:
                cur.execute("DELETE FROM refusals WHERE account = ?", (account,))
                return cur.rowcount
            cur.executemany(
                "DELETE FROM refusals WHERE account = ? AND uid = ?",
                [(account, uid) for uid in uids],
            )
            return cur.rowcount

    def account_totals(self, account: str) -> AccountTotals:
        """Counts for ``popkeep status``; all zero for an unknown account."""
        with self._reading("count messages") as conn:
            row = conn.execute(
                f"""SELECT count(*),
                          count(first_retrieved_at),
                          coalesce(sum(state IN {_ON_SERVER}), 0),
                          coalesce(sum(CASE WHEN state IN {_ON_SERVER} THEN size END), 0),
                          coalesce(sum(state = 'deleted'), 0),
                          coalesce(sum(state = 'gone'), 0)
                     FROM messages WHERE account = ?""",  # noqa: S608 - constant tuple
                (account,),
            ).fetchone()
        return AccountTotals(*row)

    # -- alerts --------------------------------------------------------------------

    def failing_since(self, account: str) -> datetime | None:
        """The first run after the account's last ``ok`` one, when the latest failed.

        Walks the ``runs_by_account`` index backwards from the newest run to the last
        ``ok`` one: the cost grows with the failure streak, not with the history, and
        the streak holds at most RUNS_KEPT + 1 runs (:meth:`_prune_runs`).
        """
        with self._reading("read runs") as conn:
            row = conn.execute(
                """SELECT min(started_at) FROM runs
                    WHERE account = ? AND started_at > coalesce(
                          (SELECT started_at FROM runs WHERE account = ? AND outcome = 'ok'
                            ORDER BY started_at DESC LIMIT 1), '')""",
                (account, account),
            ).fetchone()
        return None if row[0] is None else datetime.fromisoformat(row[0])

    def open_alerts(self, account: str) -> list[Alert]:
        """Active alerts and those whose clearing notice is owed, oldest first."""
        with self._reading("read alerts") as conn:
            rows = conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts"  # noqa: S608 - constant columns
                " WHERE account = ? AND cleared_sent_at IS NULL ORDER BY raised_at, condition",
                (account,),
            ).fetchall()
        return _alerts(rows)

    def recent_alerts(self, account: str, limit: int = 20) -> list[Alert]:
        """Every alert of the account, most recently raised first, at most ``limit``."""
        with self._reading("read alerts") as conn:
            rows = conn.execute(
                f"SELECT {_ALERT_COLUMNS} FROM alerts"  # noqa: S608 - constant columns
                " WHERE account = ? ORDER BY raised_at DESC, condition LIMIT ?",
                (account, limit),
            ).fetchall()
        return _alerts(rows)

    def raise_alert(self, alert: Alert) -> bool:
        """Insert ``alert`` unless its condition is already active for the account."""
        a = alert
        row = (
            a.account, a.condition, _encode_time(a.raised_at), _encode_time(a.since), a.details,
            *(None if t is None else _encode_time(t)
              for t in (a.raised_sent_at, a.cleared_at, a.cleared_sent_at)),
        )  # fmt: skip
        with self._transaction("raise an alert") as cur:
            cur.execute(
                f"INSERT INTO alerts ({_ALERT_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?"  # noqa: S608
                " WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE account = ? AND condition = ?"
                " AND cleared_at IS NULL)",
                (*row, a.account, a.condition),
            )
            return cur.rowcount == 1

    def clear_alert(self, account: str, condition: str, now: datetime) -> bool:
        """Set ``cleared_at`` on the active alert of ``condition``."""
        with self._transaction("clear an alert") as cur:
            cur.execute(
                "UPDATE alerts SET cleared_at = ?"
                " WHERE account = ? AND condition = ? AND cleared_at IS NULL",
                (_encode_time(now), account, condition),
            )
            return cur.rowcount == 1

    def alert_told(self, alert: Alert, cleared: bool, now: datetime) -> None:
        """Record that the raising (or clearing) notice of ``alert`` is delivered."""
        column = "cleared_sent_at" if cleared else "raised_sent_at"
        with self._transaction("record an alert notice") as cur:
            cur.execute(
                f"UPDATE alerts SET {column} = ?"  # noqa: S608 - one of two constants
                " WHERE account = ? AND condition = ? AND raised_at = ?",
                (_encode_time(now), alert.account, alert.condition,
                 _encode_time(alert.raised_at)),
            )  # fmt: skip
            if cleared:  # it is settled now: keep the newest ALERTS_KEPT settled ones
                cur.execute(
                    """DELETE FROM alerts
                        WHERE account = ?1 AND cleared_sent_at IS NOT NULL
                          AND (condition, raised_at) NOT IN
                              (SELECT condition, raised_at FROM alerts
                                WHERE account = ?1 AND cleared_sent_at IS NOT NULL
                                ORDER BY raised_at DESC, condition LIMIT ?2)""",
                    (alert.account, ALERTS_KEPT),
                )

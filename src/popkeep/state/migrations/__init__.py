"""Schema migrations of the SQLite state store, as data.

Owns: the schema. ``MIGRATIONS[i]`` holds the statements that bring a database
from ``PRAGMA user_version`` *i* to *i + 1*; the store runs each step in one
transaction together with the version bump, so a crash mid-migration leaves the
previous version intact. Append new steps; never edit a released one.

Conventions: times are UTC ISO-8601 text (``2026-01-01T10:00:00.000000+00:00``);
``messages.state`` holds :class:`popkeep.model.MessageState` values; intents keep
their sink names as a JSON array. ``messages.sinks`` is a denormalised copy of
the sink names in ``receipts`` for that message (sorted, joined by ``char(31)``),
kept in step by the store in the same transactions, so that listing a 20,000
message mailbox needs no join.
"""

from __future__ import annotations

_V1: tuple[str, ...] = (
    """
    CREATE TABLE messages (
        account             TEXT    NOT NULL,
        uid                 TEXT    NOT NULL,
        size                INTEGER NOT NULL,
        sha256              TEXT,
        state               TEXT    NOT NULL,
        first_retrieved_at  TEXT,
        deleted_at          TEXT,
        gone_at             TEXT,
        sinks               TEXT,
        PRIMARY KEY (account, uid)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX messages_by_hash ON messages (account, sha256)",
    """
    CREATE TABLE receipts (
        account       TEXT NOT NULL,
        uid           TEXT NOT NULL,
        sink          TEXT NOT NULL,
        ref           TEXT NOT NULL,
        delivered_at  TEXT NOT NULL,
        PRIMARY KEY (account, uid, sink)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE intents (
        account     TEXT    NOT NULL,
        uid         TEXT    NOT NULL,
        key         TEXT    NOT NULL,
        sha256      TEXT    NOT NULL,
        size        INTEGER NOT NULL,
        sinks       TEXT    NOT NULL,
        created_at  TEXT    NOT NULL,
        PRIMARY KEY (account, uid)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        account          TEXT    NOT NULL,
        started_at       TEXT    NOT NULL,
        finished_at      TEXT    NOT NULL,
        outcome          TEXT    NOT NULL,
        error            TEXT,
        listed           INTEGER NOT NULL DEFAULT 0,
        delivered        INTEGER NOT NULL DEFAULT 0,
        delivered_bytes  INTEGER NOT NULL DEFAULT 0,
        deleted          INTEGER NOT NULL DEFAULT 0,
        gone             INTEGER NOT NULL DEFAULT 0,
        skipped          INTEGER NOT NULL DEFAULT 0,
        server_count     INTEGER NOT NULL DEFAULT 0,
        server_octets    INTEGER NOT NULL DEFAULT 0,
        adopted          INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX runs_by_account ON runs (account, started_at)",
)

#: Version 2: a covering index for ``uids_by_state`` (state → uids of an account), so
#: a no-op poll of a 20,000-message account reads the index in order instead of
#: sorting every row into a temporary B-tree (≈ 16 → 8 ms here).
_V2: tuple[str, ...] = (
    "CREATE INDEX messages_by_state ON messages (account, state, uid)",
)

#: Version 3: messages a sink refused for good (StateStore.refusals), so later runs
#: skip them with a report instead of fetching and offering them again every time.
_V3: tuple[str, ...] = (
    """
    CREATE TABLE refusals (
        account     TEXT    NOT NULL,
        uid         TEXT    NOT NULL,
        sink        TEXT    NOT NULL,
        size        INTEGER NOT NULL,
        sha256      TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        refused_at  TEXT    NOT NULL,
        PRIMARY KEY (account, uid, sink)
    ) WITHOUT ROWID
    """,
)

#: Version 4: alerts (StateStore.raise_alert …): one row per raised condition of an
#: account, from raising to the notice that it cleared. A row whose notice is not yet
#: delivered (``raised_sent_at`` / ``cleared_sent_at`` NULL) is the alert's intent: the
#: next pass delivers it (asking the sink first), so a crash neither loses nor repeats it.
#: At most one row per (account, condition) has ``cleared_at`` NULL (the store keeps it so).
_V4: tuple[str, ...] = (
    """
    CREATE TABLE alerts (
        account          TEXT NOT NULL,
        condition        TEXT NOT NULL,
        raised_at        TEXT NOT NULL,
        since            TEXT NOT NULL,
        details          TEXT NOT NULL,
        raised_sent_at   TEXT,
        cleared_at       TEXT,
        cleared_sent_at  TEXT,
        PRIMARY KEY (account, condition, raised_at)
    ) WITHOUT ROWID
    """,
)

#: Version 5: what a message was when collected, to tell a new message under a reused
#: UIDL from it (docs/guarantees.md, "sources: POP3"): ``listed_size``, the size the
#: server's LIST gave (``size`` is the octets retrieved, which a server may count
#: differently), and ``header_digest`` (:func:`popkeep.headers.header_digest`). NULL
#: for messages collected before: those are not checked.
_V5: tuple[str, ...] = (
    "ALTER TABLE messages ADD COLUMN listed_size INTEGER",
    "ALTER TABLE messages ADD COLUMN header_digest TEXT",
)

#: Version 6: a partial covering index for ``live_octets`` (the LIST sizes of the
#: messages on the server, summed), which every poll reads: a scan of the live rows
#: only, no row look-ups. Partial, so no other query picks it instead of
#: ``messages_by_state`` (whose order ``uids_by_state`` keeps).
_V6: tuple[str, ...] = (
    "CREATE INDEX messages_live_sizes ON messages (account, state, listed_size)"
    " WHERE state IN ('seen', 'delivered')",
)

#: ``MIGRATIONS[i]``: the statements taking schema version ``i`` to ``i + 1``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)

#: The schema version this popkeep writes.
SCHEMA_VERSION = len(MIGRATIONS)

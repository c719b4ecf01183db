"""The maildrop served by :class:`popkeep.testing.server.ScriptedPOP3Server`.

Owns an ordered list of (uid, message) entries in CRLF form and the RFC 1939
§6 UPDATE rule: deletions marked by DELE are applied only when a session's
QUIT commits them; a dropped connection deletes nothing. Tests may add and
remove messages between sessions (new mail arriving, another device deleting).
Also owns byte-stuffing (RFC 1939 §3), done with ``bytes.replace`` so serving
large mailboxes is fast. No sockets here; a lock makes it safe to inspect from
a test thread while a :class:`~popkeep.testing.server.ServerThread` serves it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from popkeep.testing.mailgen import crlf

ChunkSource = Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class MailboxEntry:
    """One message of the maildrop: whole ``data``, or a ``source`` of chunks."""

    uid: str
    size: int
    data: bytes | None = None
    source: ChunkSource | None = None

    def chunks(self) -> Iterable[bytes]:
        """The message's octets, in one piece or as the source yields them."""
        if self.data is not None:
            return (self.data,)
        assert self.source is not None
        return self.source()


def stuff(message: bytes) -> bytes:
    """A whole message byte-stuffed and terminated, ready to follow "+OK" (RFC 1939 §3).

    A leading "." of any line is doubled; a missing final CRLF is added before
    the terminating ".CRLF".
    """
    out = message.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out + b".\r\n"


def stuff_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Like :func:`stuff` for a message arriving in chunks; lines may span chunks."""
    line_start, after_cr = True, False
    for chunk in chunks:
        if not chunk:
            continue
        if line_start and chunk.startswith(b"."):
            chunk = b"." + chunk
        elif after_cr and chunk.startswith(b"\n."):
            chunk = b"\n." + chunk[1:]
        yield chunk.replace(b"\r\n.", b"\r\n..")
        line_start, after_cr = chunk.endswith(b"\r\n"), chunk.endswith(b"\r")
    yield b".\r\n" if line_start else b"\r\n.\r\n"


class Mailbox:
    """An ordered, thread-safe maildrop of unique uids."""

    def __init__(self, entries: Iterable[tuple[str, bytes]] = ()) -> None:
        self._lock = threading.Lock()
        self._entries: list[MailboxEntry] = []
        self._uids: set[str] = set()
        #: uids removed by committed QUITs, in order (for tests to inspect).
        self.deleted: list[str] = []
        for uid, message in entries:
            self.add(message, uid)

    @classmethod
    def from_messages(cls, messages: Iterable[bytes]) -> Mailbox:
        """A mailbox whose uids derive from each message's SHA-1 (``-2``… for repeats)."""
        box = cls()
        for message in messages:
            box.add(message)
        return box

    @classmethod
    def from_maildir(cls, path: Path | str) -> Mailbox:
        """Load ``new/`` then ``cur/`` of a Maildir, sorted by file name, as CRLF."""
        root = Path(path)
        files = [f for sub in ("new", "cur") for f in sorted((root / sub).glob("*"))]
        return cls.from_messages(crlf(f.read_bytes()) for f in files if f.is_file())

    def add(self, message: bytes, uid: str | None = None) -> str:
        """Append ``message`` (new mail arriving); returns its uid."""
        with self._lock:
            uid = uid or self._free_uid(hashlib.sha1(message).hexdigest())  # noqa: S324
            self._append(MailboxEntry(uid, len(message), data=message))
        return uid

    def add_stream(self, source: ChunkSource, size: int, uid: str) -> str:
        """Append a message produced in chunks on each RETR (never held whole)."""
        with self._lock:
            self._append(MailboxEntry(uid, size, source=source))
        return uid

    def remove(self, uid: str) -> bool:
        """Remove ``uid`` now (another device deleted it); False if absent."""
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if e.uid != uid]
            self._uids.discard(uid)
            return len(self._entries) < before

    def reuse_uid(self, uid: str, message: bytes) -> None:
        """The misbehaviour of issue 16: ``uid``'s message is gone (removed now if still
        there, as another device would) and the server hands its UIDL to ``message``,
        new mail appended at the end (RFC 1939 §7 allows reuse once the old is gone)."""
        self.remove(uid)
        self.add(message, uid)

    def commit_deletions(self, uids: Iterable[str]) -> list[str]:
        """RFC 1939 §6 UPDATE: remove ``uids`` still present; returns those removed."""
        doomed = set(uids)
        with self._lock:
            removed = [e.uid for e in self._entries if e.uid in doomed]
            self._entries = [e for e in self._entries if e.uid not in doomed]
            self._uids -= doomed
            self.deleted.extend(removed)
        return removed

    def snapshot(self) -> tuple[MailboxEntry, ...]:
        """The entries as a session sees them from login on (numbers fixed, RFC 1939 §5)."""
        with self._lock:
            return tuple(self._entries)

    @property
    def uids(self) -> list[str]:
        """Current uids in maildrop order."""
        return [e.uid for e in self.snapshot()]

    def message(self, uid: str) -> bytes:
        """The whole message ``uid`` (joins streamed ones; meant for small tests)."""
        for entry in self.snapshot():
            if entry.uid == uid:
                return b"".join(entry.chunks())
        raise KeyError(uid)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, uid: object) -> bool:
        with self._lock:
            return uid in self._uids

    def _free_uid(self, base: str) -> str:
        uid, n = base, 1
        while uid in self._uids:
            n += 1
            uid = f"{base}-{n}"
        return uid

    def _append(self, entry: MailboxEntry) -> None:
        if entry.uid in self._uids:
            raise ValueError(f"duplicate uid {entry.uid!r}")
        self._uids.add(entry.uid)
        self._entries.append(entry)


def top_of(chunks: Iterable[bytes], lines: int) -> bytes:
    """The header, blank line and first ``lines`` body lines (RFC 1939 §7 TOP).

    Reads ``chunks`` only as far as needed; a message without a blank line is
    returned whole.
    """
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        cut = _top_cut(buf, lines)
        if cut is not None:
            return bytes(buf[:cut])
    return bytes(buf)


def _top_cut(buf: bytearray, lines: int) -> int | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    pos = end + 4
    for _ in range(lines):
        newline = buf.find(b"\n", pos)
        if newline < 0:
            return None
        pos = newline + 1
    return pos

"""The mbox append journal: how a crashed append is cut off and a finished one found.

Owns ``<mbox>.popkeep-journal``, a text file of one-line records appended (and
fsynced) by the mbox sink while it holds the mbox's locks:

- ``begin INODE START`` before a batch is appended (START: the mbox's length);
- ``put KEY OFFSET LENGTH SHA256`` for each message, once the mbox is fsynced
  (OFFSET/LENGTH: the octets from its ``From_`` line to its separator line);
- ``end INODE END`` after the puts: the batch is complete and durable;
- ``cut INODE START`` when an append was undone (an error, or :meth:`repair`).

A ``begin`` with neither ``end`` nor ``cut`` after it is an append a crash
interrupted. Its receipts were never returned (the ``end`` record is durable
before :meth:`MboxSink.deliver` returns), so :meth:`Journal.repair` truncates
the mbox back to START and no reader sees the partial message, or the complete
but unacknowledged ones (the collector delivers those again: exactly once).
The ``put`` records of completed batches are what :meth:`Journal.index` returns,
so recovery finds a message appended before a crash without trace headers; the
caller verifies the octets at OFFSET against LENGTH and SHA256 before believing it.

A record cut short by a crash is ignored (a partial ``end`` is no ``end``). The
journal is compacted when it passes :data:`COMPACT_AT`: the newest completed
batches are kept (about :data:`KEEP` octets of records, thousands of messages —
far more than one run can leave pending). Must not: hold message data, or be
written without the mbox's locks.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger(__name__)

COMPACT_AT = 1 << 20  #: journal size (octets) that triggers compaction
KEEP = 256 << 10  #: octets of the newest completed records kept by compaction


class Placed(NamedTuple):
    """Where one message of a completed append lies in the mbox (inode ``inode``)."""

    key: str
    inode: int
    offset: int
    length: int
    sha256: str


class _Parsed(NamedTuple):
    blocks: list[list[str]]  #: completed batches, each its record lines (begin … end)
    unfinished: tuple[int, int] | None  #: (inode, start) of a begin never ended or cut


def write_all(fd: int, data: bytes) -> None:
    """Write every octet: ``os.write`` may write fewer than asked (a filling disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _parse(text: str) -> _Parsed:
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.split("\n")[:-1]:  # a last line without "\n" was cut short
        kind, *fields = line.split(" ")
        if kind == "begin" and len(fields) == 2:
            current = [line]
        elif kind == "put" and len(fields) == 4 and current is not None:
            current.append(line)
        elif kind == "end" and current is not None:
            blocks.append([*current, line])
            current = None
        elif kind == "cut":
            current = None
    unfinished = None
    if current is not None:
        _, inode, start = current[0].split(" ")
        unfinished = (int(inode), int(start))
    return _Parsed(blocks, unfinished)


class Journal:
    """The journal beside one mbox. Every method is called with the mbox's locks held,
    except :meth:`index` (a reader; it sees only records that were complete)."""

    def __init__(self, mbox: Path) -> None:
        self.path = mbox.with_name(mbox.name + ".popkeep-journal")

    def _read(self) -> _Parsed:
        try:
            return _parse(self.path.read_bytes().decode("ascii", "replace"))
        except FileNotFoundError:
            return _Parsed([], None)

    def _append(self, records: str) -> None:
        """Append ``records`` and fsync them (and the directory, on creation)."""
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                records = "\n" + records  # end a record a failed write cut short
            write_all(fd, records.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _sync_dir(self.path.parent)

    def repair(self, fd: int) -> int:
        """Cut off an append a crash interrupted (module docstring); the octets removed.

        ``fd`` is the mbox, open for writing. A file that is no longer the one the
        append began on (another inode) or is shorter than it was then (rewritten
        by a mail reader) is left alone, with a warning."""
        unfinished = self._read().unfinished
        if unfinished is None:
            return 0
        inode, start = unfinished
        info = os.fstat(fd)
        removed = 0
        if info.st_ino == inode and info.st_size >= start:
            removed = info.st_size - start
            os.ftruncate(fd, start)
            os.fsync(fd)
            if removed:
                logger.warning("mbox: cut off %d octets a killed run left half-appended", removed)
        else:
            logger.warning("mbox: an interrupted append cannot be undone: the file was replaced")
        self._append(f"cut {inode} {start}\n")
        return removed

    def begin(self, inode: int, start: int) -> None:
        """Record (durably) that an append starts at ``start``; compacts first if due."""
        self._compact()
        self._append(f"begin {inode} {start}\n")

    def end(self, inode: int, placed: list[Placed], end: int) -> None:
        """Record (durably) where each message went, and that the append is complete."""
        puts = "".join(f"put {p.key} {p.offset} {p.length} {p.sha256}\n" for p in placed)
        self._append(f"{puts}end {inode} {end}\n")

    def cut(self, inode: int, start: int) -> None:
        """Record that the append begun at ``start`` was undone (the mbox truncated)."""
        self._append(f"cut {inode} {start}\n")

    def index(self) -> dict[str, Placed]:
        """Delivery key → where the newest completed append put it."""
        found: dict[str, Placed] = {}
        for block in self._read().blocks:
            inode = int(block[0].split(" ")[1])
            for line in block[1:-1]:
                _, key, offset, length, sha256 = line.split(" ")
                found[key] = Placed(key, inode, int(offset), int(length), sha256)
        return found

    def _compact(self) -> None:
        """Keep the newest completed batches only (module docstring); atomic replace."""
        try:
            if self.path.stat().st_size < COMPACT_AT:
                return
        except FileNotFoundError:
            return
        kept: list[str] = []
        size = 0
        for block in reversed(self._read().blocks):
            text = "".join(line + "\n" for line in block)
            if size + len(text) > KEEP and kept:
                break
            kept.insert(0, text)
            size += len(text)
        temporary = self.path.with_name(self.path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, "".join(kept).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        _sync_dir(self.path.parent)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The mbox sink: append messages to one mboxrd file, locked, fsynced, journaled.

Owns: the mboxrd format (a ``From_`` separator line; every line matching
``^>*From `` gets one more ``>``, so reading strips exactly one and the bytes
come back), local LF line endings, and locking that cooperates with MUAs and
MDAs: a dotlock (``<path>.lock`` created with ``O_EXCL`` and holding our pid; a
lock older than ``stale_lock`` seconds, or whose process is dead, is broken)
plus ``fcntl.lockf`` on the file itself.

A batch is appended under both locks and fsynced before :meth:`deliver`
returns, with every ``os.write`` checked (short writes are continued; an error
such as ENOSPC truncates the file back to its previous length and raises
:class:`DeliveryError`: no receipt). Before appending, a file that does not end
in a line end (cut by another program, or a full disk) gets one plus an empty
line, so our ``From_`` line always starts a line.

Exactly once, with or without trace headers, by the append journal
(:mod:`popkeep.sinks.mboxjournal`): the file's length is journaled before each
append, so an append a crash interrupted is cut off the next time the mbox is
opened or appended to; and where each message went (offset, length, sha256) is
journaled once it is durable, so :meth:`find` locates a message appended before
a crash and checks its octets before believing it. With ``trace_headers = true``
:meth:`find` also scans for the ``Received: … id <key>`` line when the journal
does not know the key (say, it was deleted), and accepts a hit only when the
octets after it are exactly the message.

Must not: build any path from message data (the paths are the configured one
plus fixed suffixes).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar

from popkeep.clock import Clock, SystemClock
from popkeep.config.sink_types import MboxSinkConfig
from popkeep.errors import DeliveryError
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery
from popkeep.sinks.mboxjournal import Journal, Placed, write_all
from popkeep.sinks.trace import envelope_sender, network_chunks, trace_lines
from popkeep.spool import SpooledMessage, to_lf

logger = logging.getLogger(__name__)

_FROM_LINE = re.compile(rb">*From ")
_POLL = 0.05  #: seconds between lock attempts
_BLOCK = 1 << 16  #: octets per write
T = TypeVar("T")


def mboxrd_quote(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """LF-terminated lines with mboxrd ``>From`` quoting; a final line gets its LF."""
    carry = b""
    for chunk in chunks:
        carry += chunk
        *lines, carry = carry.split(b"\n")
        for line in lines:
            yield (b">" if _FROM_LINE.match(line) else b"") + line + b"\n"
    if carry:
        yield (b">" if _FROM_LINE.match(carry) else b"") + carry + b"\n"


def mboxrd_unquote(line: bytes) -> bytes:
    """The inverse of the quoting for one body line (used by readers and tests)."""
    return line[1:] if re.match(rb">+From ", line) else line


def from_line(sender: str, when: datetime) -> bytes:
    """``From sender Www Mmm dd hh:mm:ss yyyy`` (asctime, UTC), LF-terminated."""
    stamp = time.asctime(when.utctimetuple())
    return f"From {sender} {stamp}\n".encode("ascii", "replace")


class DotLock:
    """``<path>.lock`` held while the mbox is written (the traditional MUA convention)."""

    def __init__(self, path: Path, timeout: float, stale_after: float) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._timeout = timeout
        self._stale_after = stale_after

    def acquire(self) -> None:
        """Take the lock, breaking it if stale; DeliveryError on timeout.

        The lock is a file holding our pid, written under a unique name first and
        then hard-linked to ``<path>.lock`` (the NFS-safe dotlock way): the lock
        never exists without its pid, even if we are killed while taking it."""
        mine = self._stamped()
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                try:
                    os.link(mine, self.path)
                    return
                except FileExistsError:
                    self._break_if_stale()
                except OSError as exc:
                    raise DeliveryError(f"cannot create {self.path}: {exc.strerror}") from exc
                if time.monotonic() >= deadline:
                    raise DeliveryError(f"{self.path} is held by another program")
                time.sleep(_POLL)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(mine)

    def _stamped(self) -> Path:
        """``<path>.lock.<pid>.<thread>``, holding our pid (what tells others a dead
        holder); unique per thread, so two sinks of one process never share it."""
        mine = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                write_all(fd, f"{os.getpid()}\n".encode())
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(mine)
            raise DeliveryError(f"cannot create {mine}: {exc.strerror}") from exc
        return mine

    def _break_if_stale(self) -> None:
        try:
            age = time.time() - self.path.stat().st_mtime
            holder = self.path.read_bytes()[:32]
        except FileNotFoundError:
            return
        if _dead(holder):
            logger.warning("breaking lock %s: its process %s is gone", self.path,
                           holder.strip().decode("ascii", "replace"))
        elif age > self._stale_after:
            logger.warning("breaking stale lock %s (%.0f s old)", self.path, age)
        else:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _dead(holder: bytes) -> bool:
    """Whether a dotlock's content names a process of this host that no longer exists."""
    try:
        pid = int(holder.split()[0])
    except (ValueError, IndexError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False


def _lockf(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise DeliveryError("mbox is locked (fcntl) by another program") from exc
            time.sleep(_POLL)


class MboxSink:
    """``type = "mbox"``. See the module docstring for the format and guarantees."""

    exactly_once = True

    def __init__(self, config: MboxSinkConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock or SystemClock()
        self._journal = Journal(config.path)
        #: key → where the journal says it is; read once per open(), then kept current
        self._index: dict[str, Placed] | None = None

    async def open(self) -> None:
        """Create the mbox (mode 0600) if missing and cut off an append a killed run left
        (module docstring). DeliveryError if its folder is unusable."""
        self._index = None
        await asyncio.to_thread(self._locked, self._repair)

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Append the batch under both locks, fsync, journal, and return ``offset`` receipts."""
        if not batch:
            return []
        return await asyncio.to_thread(self._locked, lambda fd: self._append(fd, list(batch)))

    def _locked(self, work: Callable[[int], T]) -> T:
        """``work(fd)`` with the mbox open for appending under the dotlock and lockf."""
        lock = DotLock(self.config.path, self.config.lock_timeout, self.config.stale_lock)
        lock.acquire()
        try:
            fd = os.open(self.config.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            lock.release()
            raise DeliveryError(f"cannot open mbox {self.config.path}: {exc.strerror}") from exc
        try:
            _lockf(fd, self.config.lock_timeout)
            return work(fd)
        finally:
            os.close(fd)  # also drops the fcntl lock
            lock.release()

    def _repair(self, fd: int) -> None:
        try:
            self._journal.repair(fd)
        except OSError as exc:
            raise self._error("cannot repair", exc) from exc

    def _error(self, what: str, exc: OSError) -> DeliveryError:
        return DeliveryError(f"{what} mbox {self.config.path}: {exc.strerror or exc}")

    def _append(self, fd: int, batch: list[Delivery]) -> list[Receipt]:
        """Repair, then append the batch between a journaled begin and end (module docstring)."""
        try:
            self._journal.repair(fd)
            _end_line(fd)
            info = os.fstat(fd)
            start = info.st_size
            self._journal.begin(info.st_ino, start)
        except OSError as exc:
            raise self._error("cannot write", exc) from exc
        try:
            placed = [self._write_one(fd, delivery, info.st_ino) for delivery in batch]
            os.fsync(fd)
            end = os.fstat(fd).st_size
            self._journal.end(info.st_ino, placed, end)
        except OSError as exc:
            self._undo(fd, info.st_ino, start)
            raise self._error("cannot write", exc) from exc
        if self._index is not None:
            self._index.update((p.key, p) for p in placed)
        logger.debug("appended %d message(s) to %s", len(batch), self.config.path)
        return [Receipt(self.name, str(p.offset)) for p in placed]

    def _write_one(self, fd: int, delivery: Delivery, inode: int) -> Placed:
        offset = os.lseek(fd, 0, os.SEEK_END)
        digest = hashlib.sha256()
        length = 0
        for block in self._render(delivery):
            write_all(fd, block)
            digest.update(block)
            length += len(block)
        return Placed(delivery.key, inode, offset, length, digest.hexdigest())

    def _undo(self, fd: int, inode: int, start: int) -> None:
        """Take a failed append back out; if even that fails, the journal's begin stays
        and the next open or append cuts it off."""
        try:
            os.ftruncate(fd, start)
            os.fsync(fd)
            self._journal.cut(inode, start)
        except OSError as exc:
            logger.warning("mbox %s: cannot undo a failed append yet: %s",
                           self.config.path, exc.strerror)

    def _render(self, delivery: Delivery) -> Iterator[bytes]:
        """From_ line, quoted LF body, one empty separator line; in ~64 KiB writes."""
        now = self._clock.now()
        prefix = trace_lines(delivery, self.name, now) if self.config.trace_headers else b""
        buffer = bytearray(from_line(envelope_sender(delivery.message), now))
        for line in mboxrd_quote(to_lf(network_chunks(delivery, prefix))):
            buffer += line
            if len(buffer) >= _BLOCK:
                yield bytes(buffer)
                buffer.clear()
        buffer += b"\n"
        yield bytes(buffer)

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """Where an earlier append put this key, checked against the octets now there;
        with trace headers, else a verified ``Received: … id <key>`` line; else None."""
        return await asyncio.to_thread(self._find, delivery_key, message)

    def _find(self, key: str, message: SpooledMessage | None) -> Receipt | None:
        try:
            if self._index is None:
                self._index = self._journal.index()
            placed = self._index.get(key)
            if placed is not None and self._holds(placed):
                return Receipt(self.name, str(placed.offset))
            if self.config.trace_headers and message is not None:
                return self._scan(key, message)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("cannot read", exc) from exc
        return None

    def _holds(self, placed: Placed) -> bool:
        """Whether the mbox still has exactly ``placed``'s octets where they were put."""
        with self.config.path.open("rb") as file:
            if os.fstat(file.fileno()).st_ino != placed.inode:
                return False
            file.seek(placed.offset)
            return _digest_of(file, placed.length) == (placed.length, placed.sha256)

    def _scan(self, key: str, message: SpooledMessage) -> Receipt | None:
        """The first trace line naming ``key`` that is followed by exactly the message."""
        needle = f" id {key}; ".encode("ascii")
        expected = _body_digest(message)
        with self.config.path.open("rb") as file:
            for hit in _occurrences(file, needle):
                file.seek(hit)
                file.readline()  # the rest of the Received line
                if _digest_of(file, expected[0]) == expected and file.read(5) in (b"", b"From "):
                    return Receipt(self.name, str(hit))
        return None

    async def close(self) -> None:
        """Nothing is held between batches."""


def _end_line(fd: int) -> None:
    """Make a file that does not end in a line end end in one plus an empty line, so
    the next ``From_`` line starts a line after a separator."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        logger.warning("mbox: the file did not end in a line end; added one")
        write_all(fd, b"\n\n")


def _digest_of(file: BinaryIO, length: int) -> tuple[int, str]:
    """(octets read, sha256) of the next ``length`` octets of ``file`` (fewer at its end)."""
    digest = hashlib.sha256()
    read = 0
    while read < length and (block := file.read(min(1 << 20, length - read))):
        digest.update(block)
        read += len(block)
    return read, digest.hexdigest()


def _body_digest(message: SpooledMessage) -> tuple[int, str]:
    """(length, sha256) of the message as stored after its trace lines: quoted LF lines
    and the empty separator line."""
    digest = hashlib.sha256()
    length = 0
    for line in mboxrd_quote(to_lf(message.chunks())):
        digest.update(line)
        length += len(line)
    digest.update(b"\n")
    return length + 1, digest.hexdigest()


def _occurrences(file: BinaryIO, needle: bytes) -> Iterator[int]:
    """Offsets of ``needle`` in ``file``, read 1 MiB at a time (the position moves)."""
    position, tail = 0, b""
    while True:
        file.seek(position)
        block = file.read(1 << 20)
        if not block:
            return
        window = tail + block
        base = position - len(tail)
        hit = window.find(needle)
        while hit >= 0:
            yield base + hit
            hit = window.find(needle, hit + 1)
        position += len(block)
        tail = window[-(len(needle) - 1) :]

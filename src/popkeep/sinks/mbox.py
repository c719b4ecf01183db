"""The mbox sink: append messages to one mboxrd file, locked and fsynced.

Owns: the mboxrd format (a ``From_`` separator line; every line matching
``^>*From `` gets one more ``>``, so reading strips exactly one and the bytes
come back), local LF line endings, and locking that cooperates with MUAs and
MDAs: a dotlock (``<path>.lock`` created with ``O_EXCL``; a lock older than
``stale_lock`` seconds is broken) plus ``fcntl.lockf`` on the file itself.
A batch is written under one lock and fsynced before :meth:`deliver` returns;
if writing fails half-way the file is truncated back to its previous length.

Exactly-once only with ``trace_headers = true``: then each message carries a
``Received: … id <key>`` line that :meth:`find` scans for. By default the bytes
are stored unchanged and :meth:`find` cannot tell, so the sink is at-least-once.

Must not: build any path from message data (the path is the configured one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from popkeep.clock import Clock, SystemClock
from popkeep.config.sink_types import MboxSinkConfig
from popkeep.errors import DeliveryError
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery
from popkeep.sinks.trace import envelope_sender, network_chunks, trace_lines
from popkeep.spool import SpooledMessage, to_lf

logger = logging.getLogger(__name__)

_FROM_LINE = re.compile(rb">*From ")
_POLL = 0.05  #: seconds between lock attempts


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
        """Create the lock file exclusively, breaking it if stale; DeliveryError on timeout."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._break_if_stale()
            except OSError as exc:
                raise DeliveryError(f"cannot create {self.path}: {exc.strerror}") from exc
            else:
                os.write(fd, f"{os.getpid()}\n".encode())
                os.close(fd)
                return
            if time.monotonic() >= deadline:
                raise DeliveryError(f"{self.path} is held by another program")
            time.sleep(_POLL)

    def _break_if_stale(self) -> None:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if age > self._stale_after:
            logger.warning("breaking stale lock %s (%.0f s old)", self.path, age)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


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

    def __init__(self, config: MboxSinkConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.name = config.name
        self.exactly_once = config.trace_headers
        self._clock = clock or SystemClock()

    async def open(self) -> None:
        """Create the mbox (mode 0600) if missing; DeliveryError if its folder is unusable."""
        await asyncio.to_thread(self._create)

    def _create(self) -> None:
        try:
            fd = os.open(self.config.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise DeliveryError(f"cannot open mbox {self.config.path}: {exc.strerror}") from exc
        os.close(fd)

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Append the batch under both locks, fsync, and return ``offset`` receipts."""
        if not batch:
            return []
        return await asyncio.to_thread(self._append_batch, list(batch))

    def _append_batch(self, batch: list[Delivery]) -> list[Receipt]:
        lock = DotLock(self.config.path, self.config.lock_timeout, self.config.stale_lock)
        lock.acquire()
        try:
            fd = os.open(self.config.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            lock.release()
            raise DeliveryError(f"cannot open mbox {self.config.path}: {exc.strerror}") from exc
        try:
            _lockf(fd, self.config.lock_timeout)
            return self._write_all(fd, batch)
        finally:
            os.close(fd)  # also drops the fcntl lock
            lock.release()

    def _write_all(self, fd: int, batch: list[Delivery]) -> list[Receipt]:
        start = os.lseek(fd, 0, os.SEEK_END)
        receipts: list[Receipt] = []
        try:
            offset = start
            for delivery in batch:
                receipts.append(Receipt(self.name, str(offset)))
                for block in self._render(delivery):
                    os.write(fd, block)
                offset = os.lseek(fd, 0, os.SEEK_END)
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise DeliveryError(f"cannot write mbox {self.config.path}: {exc.strerror}") from exc
        logger.debug("appended %d message(s) to %s", len(batch), self.config.path)
        return receipts

    def _render(self, delivery: Delivery) -> Iterator[bytes]:
        now = self._clock.now()
        yield from self._lines_blocked(delivery, now)

    def _lines_blocked(self, delivery: Delivery, now: datetime) -> Iterator[bytes]:
        """From_ line, quoted LF body, one empty separator line; in ~64 KiB writes."""
        prefix = trace_lines(delivery, self.name, now) if self.config.trace_headers else b""
        buffer = bytearray(from_line(envelope_sender(delivery.message), now))
        for line in mboxrd_quote(to_lf(network_chunks(delivery, prefix))):
            buffer += line
            if len(buffer) >= 1 << 16:
                yield bytes(buffer)
                buffer.clear()
        buffer += b"\n"
        yield bytes(buffer)

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """With trace headers: the offset of the trace line naming this key; else None."""
        if not self.config.trace_headers:
            return None
        return await asyncio.to_thread(self._scan, delivery_key)

    def _scan(self, key: str) -> Receipt | None:
        needle = f" id {key}; ".encode("ascii")
        overlap = len(needle)
        try:
            with self.config.path.open("rb") as file:
                position, tail = 0, b""
                while block := file.read(1 << 20):
                    window = tail + block
                    hit = window.find(needle)
                    if hit >= 0:
                        return Receipt(self.name, str(position - len(tail) + hit))
                    position += len(block)
                    tail = window[-overlap:]
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DeliveryError(f"cannot read mbox {self.config.path}: {exc.strerror}") from exc
        return None

    async def close(self) -> None:
        """Nothing is held between batches."""

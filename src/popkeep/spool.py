"""One retrieved message, held in memory while small and spilled to a file when large.

Owns: buffering the bytes of one message as received (dot-unstuffed, line endings
as the server sent them), its size and sha256. Memory per message is bounded by
``spill_at``; beyond it the bytes go to an unnamed file in the spool directory.
With an :class:`LfCopy` a spilled message also gets a second unnamed file with
CRLF → LF already done (:func:`to_lf`), written while the message downloads, in
the directory it names: a sink storing LF (Maildir) passes its own ``tmp/``, and
then gives that file a name there (:meth:`SpooledMessage.link_lf`, a hard link:
no byte is copied) instead of converting or copying 200 MB after the download;
and it is told each time another :data:`LF_NUDGE_EVERY` octets were written, to
start their way to disk while the rest downloads. When every sink stores LF
(``LfCopy.only``), a spilled message is not spooled in its network form at all:
writing it, and freeing 200 MB of file afterwards, was a third of the time a
200 MB message took.
A spool file that cannot be made or written (a full disk) is a
:class:`~popkeep.errors.CannotCreate` (exit 73), one line, never an ``OSError``.
Must not: parse the message, or build any path from server data.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO, NamedTuple

from popkeep.errors import CannotCreate

DEFAULT_SPILL_AT = 4 << 20
CHUNK = 1 << 20
LF_NUDGE_EVERY = 16 << 20  #: octets received into the LF copy between two ``LfCopy.written``


class LfCopy(NamedTuple):
    """Where a spilled message's LF copy goes, and whom to tell as it grows."""

    directory: Path
    #: called (in the writing thread) each time another LF_NUDGE_EVERY octets of the
    #: message went into the LF copy (handed to the kernel, not flushed)
    written: Callable[[], object] | None = None
    #: nothing needs the network form: a spilled message keeps only its LF copy, and
    #: its :meth:`SpooledMessage.chunks` raises (a message held in memory has both)
    only: bool = False


#: a CR followed by anything but LF (with a CR at the very end: every lone CR)
_LONE_CR = re.compile(rb"\r[^\n]")


def crlf_to_lf(data: bytes) -> bytes:
    """``data.replace(b"\\r\\n", b"\\n")``, in about a third of its time for mail.

    Where every CR begins a CRLF (nearly every message: a lone CR is rare), CRLF →
    LF is deleting every CR, which ``replace`` does with ``memchr`` from one CR to
    the next instead of a two-octet search; one regular-expression scan for a lone
    CR proves it; else the two-octet ``replace``. For the 55 MB of the benchmark's
    2,000 messages: ≈ 30 ms against ≈ 85 ms, and fewer instructions too (≈ 450 M
    against ≈ 540 M under valgrind; bench/README.md, "Round 12"). The Maildir
    writer does this under the GIL for every octet it stores. ``tests/test_spool.py``
    holds it to ``replace``.
    """
    if _LONE_CR.search(data) is None and not data.endswith(b"\r"):
        return data.replace(b"\r", b"")
    return data.replace(b"\r\n", b"\n")


class LfConverter:
    """CRLF → LF for a byte stream cut anywhere: a CR at the end of one chunk waits for
    the next. A lone CR or LF passes through unchanged."""

    __slots__ = ("_cr",)

    def __init__(self) -> None:
        self._cr = False

    def feed(self, chunk: bytes) -> bytes:
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        return crlf_to_lf(chunk)

    def end(self) -> bytes:
        """What is still held back (a final lone CR)."""
        held, self._cr = self._cr, False
        return b"\r" if held else b""


def to_lf(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """CRLF → LF across chunk boundaries; a lone CR or LF passes through unchanged."""
    convert = LfConverter()
    for chunk in chunks:
        if chunk and (out := convert.feed(chunk)):
            yield out
    if tail := convert.end():
        yield tail


class SpoolWriter:
    """Accumulates one message; :meth:`finish` returns the :class:`SpooledMessage`."""

    def __init__(
        self,
        spool_dir: Path | None = None,
        spill_at: int = DEFAULT_SPILL_AT,
        *,
        lf_copy: LfCopy | None = None,
    ) -> None:
        """``lf_copy``: give a message that spills an LF copy too (module docstring)."""
        self._dir = spool_dir
        self._spill_at = spill_at
        self._lf_copy = lf_copy
        self._lf_unreported = 0  #: LF octets written since ``lf_copy.written`` was called
        self._parts: list[bytes] = []
        self._held = 0
        self._size = 0
        self._hash = hashlib.sha256()
        self._spilled = False
        self._file: BinaryIO | None = None
        self._lf_file: BinaryIO | None = None
        self._lf_linkable = False
        self._lf = LfConverter()

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``. CannotCreate when the spool file cannot be made or written
        (a full disk, no permission): one line, never an OSError traceback."""
        # A plain try, not a context manager: this runs for every chunk of every
        # message, and a generator-based one cost ≈ 11,000 instructions a call (callgrind).
        try:
            self._write(chunk)
        except OSError as exc:
            raise self._cannot_spool(exc) from exc

    def _cannot_spool(self, exc: OSError) -> CannotCreate:
        """Drop what was received; the one-line error saying why and where."""
        self.discard()
        where = self._dir or (self._lf_copy.directory if self._lf_copy else None)
        place = where if where is not None else "the temporary directory ($TMPDIR)"
        return CannotCreate(
            f"cannot spool a message of {self._size} octets so far to {place}: "
            f"{exc.strerror or exc}"
        )

    def _write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._size += len(chunk)
        if self._spilled:
            if self._file is not None:
                self._file.write(chunk)
            if self._lf_file is not None:
                self._lf_file.write(self._lf.feed(chunk))
                self._lf_unreported += len(chunk)
                if self._lf_unreported >= LF_NUDGE_EVERY:
                    self._report_lf()
            return
        self._parts.append(chunk)
        self._held += len(chunk)
        if self._held > self._spill_at:
            self._spill()

    def _spill(self) -> None:
        import tempfile  # lazy: most messages never spill, and startup time is measured

        # Unnamed temporary files: nothing to clean up if we crash.
        self._spilled = True
        if self._lf_copy is not None:
            self._lf_file, self._lf_linkable = _linkable_file(self._lf_copy.directory, self._dir)
        if self._lf_copy is None or not self._lf_copy.only:
            self._file = tempfile.TemporaryFile(dir=self._dir)  # noqa: SIM115 - the message's
        for part in self._parts:
            if self._file is not None:
                self._file.write(part)
            if self._lf_file is not None:
                self._lf_file.write(self._lf.feed(part))
        self._parts = []
        self._held = 0

    def _report_lf(self) -> None:
        """Hand what the LF copy holds to the kernel and tell ``LfCopy.written``."""
        assert self._lf_file is not None and self._lf_copy is not None
        self._lf_unreported = 0
        if self._lf_copy.written is not None:
            self._lf_file.flush()
            self._lf_copy.written()

    @property
    def size(self) -> int:
        return self._size

    def finish(self) -> SpooledMessage:
        """The whole message; CannotCreate like :meth:`write`."""
        try:
            return self._finish()
        except OSError as exc:
            raise self._cannot_spool(exc) from exc

    def _finish(self) -> SpooledMessage:
        if self._spilled:
            if self._file is not None:
                self._file.flush()
            if self._lf_file is not None:
                self._lf_file.write(self._lf.end())
                self._lf_file.flush()
            return SpooledMessage(
                self._size, self._hash.hexdigest(), None, self._file, self._lf_file,
                lf_linkable=self._lf_linkable,
            )
        return SpooledMessage(self._size, self._hash.hexdigest(), b"".join(self._parts), None)

    def discard(self) -> None:
        """Drop what was received; never raises (closing may flush to a full disk)."""
        for file in (self._file, self._lf_file):
            if file is not None:
                with suppress(OSError):
                    file.close()
        self._parts = []


class SpooledMessage:
    """The bytes of one message as received, with their size and sha256 (hex)."""

    __slots__ = ("_data", "_file", "_lf_file", "_lf_linkable", "sha256", "size")

    def __init__(
        self,
        size: int,
        sha256: str,
        data: bytes | None,
        file: BinaryIO | None,
        lf_file: BinaryIO | None = None,
        *,
        lf_linkable: bool = False,
    ) -> None:
        self.size = size
        self.sha256 = sha256
        self._data = data
        self._file = file
        self._lf_file = lf_file  #: the bytes with CRLF → LF done, when spooled with lf_copy
        self._lf_linkable = lf_linkable  #: lf_file is an O_TMPFILE file, not yet named

    @classmethod
    def from_bytes(cls, data: bytes) -> SpooledMessage:
        return cls(len(data), hashlib.sha256(data).hexdigest(), data, None)

    @property
    def in_memory(self) -> bool:
        return self._data is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` released the bytes (size and sha256 stay readable)."""
        return self._data is None and self._file is None and self._lf_file is None

    def read_all(self) -> bytes:
        """All bytes at once. Only for messages held in memory (small); large ones raise."""
        if self._data is None:
            raise ValueError("message is spooled to disk; iterate chunks() instead")
        return self._data

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes in order, at most ``size`` at a time for spilled messages."""
        if self._data is not None:
            yield self._data
            return
        if self._file is None:
            if self._lf_file is not None:  # LfCopy.only: nothing reads this form
                raise ValueError("message was spooled in LF form only; use lf_chunks()")
            raise ValueError("message is closed")
        yield from _read_file(self._file, size)

    def lf_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes with CRLF → LF (:func:`to_lf`); read from the copy made while the
        message downloaded, when there is one."""
        if self._lf_file is not None:
            yield from _read_file(self._lf_file, size)
        elif self._data is not None:
            # Held in memory (most messages): one chunk, the bytes :func:`to_lf` would
            # give in one or two (a final lone CR stays), without its two generators.
            if self._data:
                yield crlf_to_lf(self._data)
        else:
            yield from to_lf(self.chunks(size))

    def link_lf(self, path: str) -> int | None:
        """Give the LF copy (:meth:`lf_chunks`) the name ``path`` and return its size.

        A hard link, so nothing is copied: ``path`` must be on the file system of the
        ``LfCopy`` directory the message was spooled with, and not exist. Returns None, and
        leaves nothing behind, when there is no LF copy that can be named (a message
        held in memory, a file system without ``O_TMPFILE``, a copy named already:
        one name only, so two Maildirs never share a file) or the link fails
        (another file system, no ``/proc``); the caller then writes ``lf_chunks()``.
        The data is not flushed: the caller makes ``path`` durable.
        """
        if self._lf_file is None or not self._lf_linkable:
            return None
        self._lf_linkable = False
        fd = self._lf_file.fileno()
        try:
            # linkat(AT_SYMLINK_FOLLOW) on the /proc link is how an unnamed O_TMPFILE
            # file gets a name without CAP_DAC_READ_SEARCH (open(2), O_TMPFILE). Given
            # no directory fd, os.link calls link(2), which would not follow it.
            fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.link(str(fd), path, src_dir_fd=fds, follow_symlinks=True)
            finally:
                os.close(fds)
        except OSError:
            return None
        return os.fstat(fd).st_size

    def close(self) -> None:
        """Release the bytes: the memory, or the spill file (unnamed, so its dirty pages
        are dropped, never written back). Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lf_file is not None:
            self._lf_file.close()
            self._lf_file = None
        self._data = None


def _linkable_file(directory: Path, fallback: Path | None) -> tuple[BinaryIO, bool]:
    """An unnamed file in ``directory`` that :meth:`SpooledMessage.link_lf` can name
    (``O_TMPFILE`` without ``O_EXCL``), and True; where that is not possible, an
    unnamed temporary file in ``fallback`` (the spool directory), and False."""
    import tempfile

    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (AttributeError, OSError):  # not Linux, a file system without it, no directory
        return tempfile.TemporaryFile(dir=fallback), False
    return os.fdopen(fd, "w+b"), True


def _read_file(file: BinaryIO, size: int) -> Iterator[bytes]:
    """A spool file from its start, ``size`` octets at a time (pread: no shared offset)."""
    fd = file.fileno()
    offset = 0
    while True:
        block = os.pread(fd, size, offset)
        if not block:
            return
        offset += len(block)
        yield block


#: Makes the writer each retrieved message is spooled into. Sources are built with
#: one (by ``app``): where and how messages are spooled is never part of the source
#: interface.
SpoolFactory = Callable[[], SpoolWriter]


class Spool:
    """The :data:`SpoolFactory` ``app`` builds for one account.

    ``lf_copy`` is filled in once the account's sinks are built: that may be after
    its source was built and began to log in (a ``popkeep fetch`` logs in while it
    starts), but always before anything is retrieved.
    """

    __slots__ = ("directory", "lf_copy")

    def __init__(self, directory: Path | None = None, lf_copy: LfCopy | None = None) -> None:
        self.directory = directory
        self.lf_copy = lf_copy

    def __call__(self) -> SpoolWriter:
        return SpoolWriter(self.directory, lf_copy=self.lf_copy)

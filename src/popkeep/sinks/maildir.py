"""The Maildir sink: one file per message, exactly once, group-committed.

Owns: the Maildir layout (``cur``/``new``/``tmp``, mode 0700; Maildir++ folders
``<root>/.A.B`` with a ``maildirfolder`` marker), file names, CRLF → LF storage
and durability. Must not: build a path from server data — the only variable part
of a file name is ``Delivery.key`` (hex, derived by popkeep from the account and
the content hash), checked to be hex before use.

File names are ``{unix_time}.{key}.{host},S={size}`` in ``new/``; a reader may
move the file to ``cur/`` and append ``:2,<flags>``. :meth:`MaildirSink.find`
looks for ``.{key}.`` in both directories, and :meth:`MaildirSink.deliver` does
not write a key that is already there (crash recovery is idempotent).

Why a batch is durable when :meth:`MaildirSink.deliver` returns (group commit):

1. every message of the batch is written into ``tmp/`` and closed;
2. one ``syncfs(2)`` flushes the data *and* metadata of every dirty file on the
   filesystem holding the Maildir (``tmp/`` and ``new/`` are on one filesystem,
   which ``rename(2)`` needs anyway), so all the tmp files are on disk. Where
   ``syncfs`` is unavailable each file is ``fsync``-ed before it is closed;
3. only then is each file renamed into ``new/``: a name in ``new/`` therefore
   never points at data that is not on disk, even after a power cut;
4. ``new/`` is ``fsync``-ed once, which makes the renames durable. (``tmp/`` is
   not: a lost unlink there can only resurrect a name in ``tmp/``, which readers
   ignore.)

One syncfs plus two directory fsyncs per batch instead of two fsyncs per message
is what makes fetching thousands of messages fast. (Linux ≥ 5.8 reports writeback
errors from ``syncfs``; older kernels may not.) ``fsync=False`` skips steps 2 and
4 — for tests and throw-away mailboxes only.

The blocking work runs in a worker thread (``asyncio.to_thread``) so the event
loop keeps reading the network while the disk writes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from popkeep.clock import Clock, SystemClock
from popkeep.config.schema import MaildirSinkConfig
from popkeep.errors import ConfigError, DeliveryError, DeliveryRefused
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery
from popkeep.sinks.trace import to_lf, trace_lines
from popkeep.spool import SpooledMessage

log = logging.getLogger(__name__)

_SUBDIRS = ("cur", "new", "tmp")
_KEY = re.compile(r"[0-9a-f]{1,128}")
_FOLDER_SEPARATORS = re.compile(r"[./]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- folder names ---------------------------------------------------------------------


def _mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 §5.1.3), the encoding Maildir++ folder names use."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            raw = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            run.clear()

    for char in name:
        if "\x20" <= char <= "\x7e":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return "".join(out)


def folder_dirname(folder: str) -> str:
    """The Maildir++ directory for a configured folder: ``"A/B"`` or ``"A.B"`` → ``".A.B"``.

    Both ``/`` and ``.`` separate levels (Maildir++ stores the hierarchy with dots).
    Raises ConfigError for names that could escape the Maildir or are ambiguous:
    empty, a leading or trailing separator, an empty level (``..``, ``//``), or
    control characters. Non-ASCII names are stored in modified UTF-7, as Dovecot
    and Courier do.
    """
    levels = _FOLDER_SEPARATORS.split(folder)
    if not folder or any(not level for level in levels) or _CONTROL.search(folder):
        raise ConfigError(
            f'maildir folder {folder!r}: expected a name like "Provider" or "Provider/Sub"'
            " (no leading, trailing or doubled '.' or '/', no control characters)"
        )
    return "." + ".".join(_mutf7(level) for level in levels)


# -- file names -------------------------------------------------------------------------


def _hostname() -> str:
    """This host's name, made safe for a Maildir file name (the usual \\057, \\072 escapes)."""
    name = os.uname().nodename or "localhost"
    return name.replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")


def _key_of(filename: str) -> str | None:
    """The delivery key in a name we wrote (``time.key.host…``), else None."""
    parts = filename.split(".", 2)
    return parts[1] if len(parts) == 3 else None


def _load_syncfs() -> Callable[[int], int] | None:
    """``syncfs(2)`` from the C library, or None where it does not exist."""
    import ctypes  # lazy: only a delivery needs it, and ``popkeep fetch`` start-up is measured

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(slots=True)
class _Staged:
    """One message written to ``tmp/``, waiting to be renamed into ``new/``."""

    tmp: str
    name: str  #: final file name in new/


class MaildirSink:
    """A local Maildir (or one Maildir++ folder of it). See the module docstring."""

    exactly_once = True

    def __init__(
        self,
        name: str,
        path: Path,
        folder: str | None = None,
        fsync: bool = True,
        clock: Clock | None = None,
        trace_headers: bool = False,
    ) -> None:
        """``folder=None`` (or ``"INBOX"``) delivers into ``path`` itself; raises ConfigError
        for an unsafe folder name."""
        self.name = name
        self.root = path
        inbox = folder is None or folder.upper() == "INBOX"
        self.directory = path if inbox else path / folder_dirname(folder or "")
        self._fsync = fsync
        self._trace = trace_headers
        self._clock: Clock = clock or SystemClock()
        self._host = _hostname()
        #: syncfs(2), looked up on the first delivery (None: fsync each file instead)
        self._syncfs: Callable[[int], int] | None = None
        self._syncfs_loaded = not fsync
        self._opened = False
        self._tmp_dir = str(self.directory / "tmp")
        #: key → file name of what the folder holds; read once per sink, then kept
        #: up to date by our own deliveries (a reader moving files to cur/ keeps keys)
        self._names: dict[str, str] | None = None
        self._found_scan = False  #: whether find() has scanned the folder since open()

    @classmethod
    def from_config(cls, config: MaildirSinkConfig, clock: Clock | None = None) -> MaildirSink:
        """The sink for one ``type = "maildir"`` table (always fsyncing)."""
        return cls(
            config.name, config.path, folder=config.folder, clock=clock,
            trace_headers=config.trace_headers,
        )

    # -- Sink protocol ----------------------------------------------------------------

    async def open(self) -> None:
        """Create the Maildir (and folder) if missing. Raises DeliveryError."""
        await asyncio.to_thread(self._create)
        self._found_scan = False  # a new run: the next find() looks at the folder again

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Store the batch durably (group commit); one receipt per delivery, in order."""
        if not batch:
            return []
        return await asyncio.to_thread(self._deliver_batch, list(batch))

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """The receipt of a message with this key in ``new/`` or ``cur/``, if any.

        The first call after :meth:`open` scans the folder; later calls use that
        scan, kept current by our own deliveries (recovery asks about every
        pending key, and one scan per run keeps that linear in the folder size).
        """
        if self._names is None or not self._found_scan:
            self._names = await asyncio.to_thread(self._index)
            self._found_scan = True
        name = self._names.get(delivery_key)
        return None if name is None else Receipt(self.name, name)

    async def close(self) -> None:
        """Nothing to release: every delivery is complete when it returns."""

    # -- creating ---------------------------------------------------------------------

    def _create(self) -> None:
        try:
            self._make_maildir(self.root)
            if self.directory != self.root:
                self._make_maildir(self.directory)
                marker = self.directory / "maildirfolder"
                if not marker.exists():
                    os.close(os.open(marker, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
                    self._sync_dir(self.directory)
        except OSError as exc:
            raise DeliveryError(
                f"maildir {self.directory}: cannot create: {exc.strerror or exc}"
            ) from exc
        self._opened = True

    def _make_maildir(self, path: Path) -> None:
        created = not path.is_dir()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in _SUBDIRS:
            if not (path / sub).is_dir():
                (path / sub).mkdir(mode=0o700)
                created = True
        if created:
            self._sync_dir(path)
            self._sync_dir(path.parent)

    def _sync_dir(self, path: Path) -> None:
        if not self._fsync:
            return
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- delivering -------------------------------------------------------------------

    def _index(self) -> dict[str, str]:
        """Delivery key → file name for every message in ``new/`` and ``cur/``."""
        found: dict[str, str] = {}
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError), os.scandir(self.directory / sub) as it:
                for entry in it:
                    key = _key_of(entry.name)
                    if key is not None:
                        found.setdefault(key, entry.name)
        return found

    def _deliver_batch(self, batch: list[Delivery]) -> list[Receipt]:
        for delivery in batch:
            if not _KEY.fullmatch(delivery.key):
                raise DeliveryRefused(f"maildir: refusing unsafe delivery key {delivery.key!r}")
        if not self._opened:
            self._create()
        if not self._syncfs_loaded:
            self._syncfs = _load_syncfs()
            self._syncfs_loaded = True
        if self._names is None:
            self._names = self._index()
        names = self._names
        staged: list[_Staged] = []
        try:
            for delivery in batch:
                if delivery.key not in names:
                    item = self._stage(delivery, staged)
                    names[delivery.key] = item.name
            self._commit(staged)
        except OSError as exc:
            self._discard(staged)
            self._names = None  # some renames may have happened: rescan next time
            where = exc.filename or self.directory
            raise DeliveryError(f"maildir: cannot store in {where}: {exc.strerror or exc}") from exc
        return [Receipt(self.name, names[d.key]) for d in batch]

    def _stage(self, delivery: Delivery, staged: list[_Staged]) -> _Staged:
        """Write one message (CRLF → LF) into ``tmp/``; append it to ``staged`` first so
        a failure half-way still gets the partial file removed."""
        stem = f"{int(self._clock.now().timestamp())}.{delivery.key}.{self._host}"
        tmp = f"{self._tmp_dir}/{stem},P{os.getpid()}"  # str paths: 2,000 files add up
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        item = _Staged(tmp, stem)
        staged.append(item)
        size = 0
        chunks = delivery.message.chunks()
        if self._trace:
            chunks = itertools.chain(
                [trace_lines(delivery, self.name, self._clock.now())], chunks
            )
        try:
            for piece in to_lf(chunks):
                _write_all(fd, piece)
                size += len(piece)
            if self._fsync and self._syncfs is None:
                os.fsync(fd)
        except OSError as exc:
            exc.filename = exc.filename or str(tmp)
            raise
        finally:
            os.close(fd)
        item.name = f"{stem},S={size}"
        return item

    def _commit(self, staged: list[_Staged]) -> None:
        """Make the staged files durable, then move them into ``new/`` (module docstring)."""
        if not staged:
            return
        new_dir = f"{self.directory}/new"
        if self._syncfs is not None:
            self._flush_filesystem(Path(self._tmp_dir))
        for item in staged:
            # If this fails half-way, the files already renamed are complete and
            # durable (found again by find()); _discard() removes the rest from tmp/.
            os.rename(item.tmp, f"{new_dir}/{item.name}")
        self._sync_dir(Path(new_dir))

    def _flush_filesystem(self, anywhere: Path) -> None:
        assert self._syncfs is not None
        fd = os.open(anywhere, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if self._syncfs(fd) != 0:
                import ctypes  # already loaded by _load_syncfs

                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), str(anywhere))
        finally:
            os.close(fd)

    def _discard(self, staged: list[_Staged]) -> None:
        """Remove what is still in ``tmp/``; files already in ``new/`` are complete."""
        for item in staged:
            try:
                os.unlink(item.tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("maildir: cannot remove %s: %s", item.tmp, exc.strerror)

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

Staging and group commit (:class:`~popkeep.sinks.base.StagingSink`):
:meth:`MaildirSink.stage` writes messages into ``tmp/`` as they arrive
(``{time}.{key}.{host},P{pid}``: no server data in the name), where readers and
:meth:`MaildirSink.find` never look; :meth:`MaildirSink.commit` makes a whole
group durable and visible at once; :meth:`MaildirSink.deliver` is the two in a
row. Why a group is durable when ``commit`` returns:

1. every message of the group was written into ``tmp/`` and closed by ``stage``;
2. one ``syncfs(2)`` flushes the data *and* metadata of every dirty file on the
   filesystem holding the Maildir (``tmp/`` and ``new/`` are on one filesystem,
   which ``rename(2)`` needs anyway), so all the tmp files are on disk. Where
   ``syncfs`` is unavailable ``stage`` ``fsync``-s each file before closing it.
   Its directory handle is opened by :meth:`MaildirSink.open`, before the run
   writes anything there, and kept until :meth:`MaildirSink.close`: ``syncfs``
   reports a writeback error that happened since the handle was opened (Linux ≥
   5.8), so none can slip by;
3. only then is each file renamed into ``new/``: a name in ``new/`` therefore
   never points at data that is not on disk, even after a power cut;
4. ``new/`` is ``fsync``-ed once, which makes the renames durable. (``tmp/`` is
   not: a lost unlink there can only resurrect a name in ``tmp/``, which readers
   ignore.)

One syncfs plus one directory fsync per group instead of two fsyncs per message
is what makes fetching thousands of messages fast. And the data does not wait for
the commit to start its way to disk: after each ``stage`` a background thread
calls ``syncfs`` too (:class:`_EarlyFlush`; it makes nothing durable that the
commit relies on, and its errors are left to the commit's own ``syncfs``), so the
kernel's flusher writes the group while the network still reads, and the
commit's ``syncfs`` finds little left to do (2,000 messages: ≈ 180 ms → a few).
(Linux ≥ 5.8 reports writeback errors from ``syncfs``; older kernels may not.)
``fsync=False`` skips steps 2 and 4 — for tests and throw-away mailboxes only.

A message large enough to spill to disk was spooled with its LF copy in ``tmp/``
already (:attr:`MaildirSink.lf_copy`, unnamed until then); staging gives that
file its ``tmp/`` name (a hard link) instead of writing 200 MB a second time, and
the background ``syncfs`` ran every 16 MB of it while it downloaded.

A process killed between ``stage`` and ``commit`` leaves files in ``tmp/``
(invisible; the message is fetched and staged again by the next run).
:meth:`MaildirSink.open` removes files in ``tmp/`` untouched for 36 hours, the
Maildir convention: younger ones may belong to another process writing now.

The blocking work runs in a worker thread (``asyncio.to_thread``) so the event
loop keeps reading the network while the disk writes. asyncio is imported when
first needed: a poll with nothing new builds the sink but never uses it.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import itertools
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from popkeep.clock import Clock, SystemClock
from popkeep.config.schema import MaildirSinkConfig
from popkeep.errors import CannotCreate, ConfigError, DeliveryError, DeliveryRefused
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery, Staged
from popkeep.sinks.hashset import HashSet
from popkeep.sinks.trace import trace_lines
from popkeep.spool import LfCopy, SpooledMessage

log = logging.getLogger(__name__)

_SUBDIRS = ("cur", "new", "tmp")
#: errno of a mkdir that no retry fixes: something in the way, no permission, no space
_CANNOT_CREATE = frozenset({
    errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
    errno.ENOSPC, errno.EDQUOT,
})  # fmt: skip
_KEY = re.compile(r"[0-9a-f]{1,128}")
_FOLDER_SEPARATORS = re.compile(r"[./]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: files in tmp/ untouched for this long are leftovers of a killed run (Maildir convention)
TMP_MAX_AGE = 36 * 3600
T = TypeVar("T")


async def _in_thread(work: Callable[..., T], *args: object) -> T:
    """``asyncio.to_thread``, importing asyncio only now (see the module docstring)."""
    import asyncio

    return await asyncio.to_thread(work, *args)


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


class _EarlyFlush:
    """``syncfs`` in a background thread after each staged batch (module docstring).

    Requests while one runs are folded into one more pass; the thread ends when no
    request is left, so an idle sink holds no thread. Never raises, never waited
    for: durability comes only from the commit's own ``syncfs``."""

    __slots__ = ("_directory", "_lock", "_running", "_syncfs", "_wanted")

    def __init__(self, syncfs: Callable[[int], int], directory: str) -> None:
        import threading

        self._syncfs = syncfs
        self._directory = directory
        self._lock = threading.Lock()
        self._running = False
        self._wanted = False

    def nudge(self) -> None:
        import threading

        with self._lock:
            self._wanted = True
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="maildir-flush", daemon=True).start()

    def _run(self) -> None:
        try:
            fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        try:
            while True:
                with self._lock:
                    if not self._wanted or fd < 0:
                        self._running = False
                        return
                    self._wanted = False
                self._syncfs(fd)
        finally:
            if fd >= 0:
                os.close(fd)


class _Nudge:
    """More data is waiting in ``tmp/``: start the background ``syncfs`` (once the sink
    has loaded it). The sink's :attr:`~MaildirSink.lf_copy` calls this, not a method of
    the sink: a bound method there made sink → lf_copy → sink a reference cycle, which
    kept every dropped sink and its index of the folder (≈ 130 bytes per message in
    it) until a full garbage collection; ``popkeep serve`` builds a sink for every pass
    and piled up hundreds of MB of them (bench/README.md, "Round 10")."""

    __slots__ = ("early",)

    def __init__(self) -> None:
        self.early: _EarlyFlush | None = None

    def __call__(self) -> None:
        if self.early is not None:
            self.early.nudge()


def _mine(handle: Staged) -> _Staged:
    if not isinstance(handle, _Staged):
        raise DeliveryRefused("maildir: not a handle this sink staged")
    return handle


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte (os.write may write less than asked)."""
    written = os.write(fd, data)  # all of it, nearly always: no view for the usual case
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


class _KeyIndex:
    """Which delivery keys the folder holds (``new/`` and ``cur/``), in memory that does
    not grow with their file names: one ``hash(key)`` per file, 16 bytes at most
    (:class:`~popkeep.sinks.hashset.HashSet`).

    A key whose hash is not there is not held: the common answer, for every message of
    a fetch, costs no name. A key whose hash is there (recovery after a crash, content
    already in the folder; or, once in about 2**64 look-ups, another key with the same
    hash) is resolved by one scan that keeps key → name for the rest of the run, as the
    whole index did before (issue 16 item 3: a 200,000-file Maildir cost ≈ 50 MiB).
    """

    __slots__ = ("_directory", "_hashes", "_names")

    def __init__(self, directory: Path) -> None:
        # The directory, not the sink's method: no sink ↔ index cycle (see _Nudge).
        self._directory = directory
        self._names: dict[str, str] | None = None
        self._hashes = HashSet(hash(key) for key, _ in self._scan())

    def _scan(self) -> Iterator[tuple[str, str]]:
        """(delivery key, file name) of every message in ``new/``, then ``cur/``."""
        for sub in ("new", "cur"):
            with contextlib.suppress(FileNotFoundError), os.scandir(self._directory / sub) as it:
                for entry in it:
                    key = _key_of(entry.name)
                    if key is not None:
                        yield key, entry.name

    def get(self, key: str) -> str | None:
        """The file name holding ``key`` (the first one scanned), or None."""
        if hash(key) not in self._hashes:
            return None
        if self._names is None:
            names: dict[str, str] = {}
            for held, name in self._scan():
                names.setdefault(held, name)
            self._names = names
        return self._names.get(key)

    def __setitem__(self, key: str, name: str) -> None:
        self._hashes.add(hash(key))
        if self._names is not None:
            self._names[key] = name


class _Staged(Staged):
    """One message in ``tmp/`` (``tmp`` set) waiting to be renamed into ``new/``, or one
    that needs no writing (``tmp`` None: already held, or staged by an earlier handle)."""

    __slots__ = ("name", "tmp")

    def __init__(self, delivery: Delivery, tmp: str | None, name: str) -> None:
        super().__init__(delivery, done=tmp is None)
        self.tmp = tmp
        self.name = name  #: final file name in new/


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
        #: with syncfs: the directory handle every commit's syncfs uses (module docstring)
        self._sync_fd = -1
        #: starts the background syncfs (its _EarlyFlush set on the first delivery)
        self._nudge = _Nudge()
        self._opened = False
        self._tmp_dir = str(self.directory / "tmp")
        #: where the collector spools the LF copy of large messages (module docstring)
        self.lf_copy = LfCopy(self.directory / "tmp", self._nudge)  # no cycle: see _Nudge
        #: the keys the folder holds; read once per sink, then kept up to date by our
        #: own deliveries (a reader moving files to cur/ keeps keys)
        self._names: _KeyIndex | None = None
        self._found_scan = False  #: whether find() has scanned the folder since open()
        #: key → final name of what is staged in tmp/ and not committed (not in _names)
        self._staging: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: MaildirSinkConfig, clock: Clock | None = None) -> MaildirSink:
        """The sink for one ``type = "maildir"`` table (always fsyncing)."""
        return cls(
            config.name, config.path, folder=config.folder, clock=clock,
            trace_headers=config.trace_headers,
        )

    # -- Sink protocol ----------------------------------------------------------------

    async def open(self) -> None:
        """Create the Maildir (and folder) if missing, and remove files left in ``tmp/``
        for more than 36 hours. Raises DeliveryError."""
        await _in_thread(self._open)
        self._found_scan = False  # a new run: the next find() looks at the folder again

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Store the batch durably (group commit); one receipt per delivery, in order."""
        return await self.commit(await self.stage(batch))

    async def stage(self, batch: Sequence[Delivery]) -> list[Staged]:
        """Write each message into ``tmp/`` (not durable, not visible); see StagingSink."""
        if not batch:
            return []
        return await _in_thread(self._stage_batch, list(batch))

    async def commit(self, staged: Sequence[Staged]) -> list[Receipt]:
        """One group commit of staged messages: syncfs, renames into ``new/``, fsync ``new/``."""
        if not staged:
            return []
        return await _in_thread(self._commit_batch, [_mine(h) for h in staged])

    async def discard(self, staged: Sequence[Staged]) -> None:
        """Remove staged files still in ``tmp/``; never raises."""
        todo = [h for h in staged if isinstance(h, _Staged) and h.tmp is not None]
        if todo:
            await _in_thread(self._remove, todo)

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """The receipt of a message with this key in ``new/`` or ``cur/``, if any.

        The first call after :meth:`open` scans the folder; later calls use that
        scan, kept current by our own deliveries (recovery asks about every
        pending key, and one scan per run keeps that linear in the folder size).
        """
        if self._names is None or not self._found_scan:
            self._names = await _in_thread(_KeyIndex, self.directory)
            self._found_scan = True
        name = self._names.get(delivery_key)
        return None if name is None else Receipt(self.name, name)

    async def close(self) -> None:
        """Release the syncfs handle (every delivery is complete when it returns)."""
        fd, self._sync_fd = self._sync_fd, -1
        if fd >= 0:
            os.close(fd)

    # -- creating ---------------------------------------------------------------------

    def _open(self) -> None:
        self._create()
        self._clean_tmp()
        self._load_flush()
        if self._fsync and self._sync_fd < 0:
            try:
                self._sync_fd = self._open_sync_fd()
            except OSError as exc:
                raise self._error(exc) from exc

    def _open_sync_fd(self) -> int:
        """The handle the commits' ``syncfs`` uses (step 2 of the module docstring)."""
        return os.open(self._tmp_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

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
            # A file in the way, no permission, a read-only or full file system: the next
            # run fails the same way until the user acts (exit 73, not 75).
            error = CannotCreate if exc.errno in _CANNOT_CREATE else DeliveryError
            raise error(f"maildir {self.directory}: cannot create: {exc.strerror or exc}") from exc
        self._opened = True

    def _make_maildir(self, path: Path) -> None:
        created = not path.is_dir()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for sub in _SUBDIRS:
            if not (path / sub).is_dir():
                # exist_ok: another account's sink may be creating the same Maildir now
                (path / sub).mkdir(mode=0o700, exist_ok=True)
                created = True
        if created:
            self._sync_dir(path)
            self._sync_dir(path.parent)

    def _load_flush(self) -> None:
        if not self._syncfs_loaded:
            self._syncfs = _load_syncfs()
            self._syncfs_loaded = True
            if self._syncfs is not None:
                self._nudge.early = _EarlyFlush(self._syncfs, self._tmp_dir)

    def _sync_dir(self, path: Path) -> None:
        if not self._fsync:
            return
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- delivering -------------------------------------------------------------------

    def _prepare(self, batch: list[Delivery]) -> _KeyIndex:
        """Check the keys, create the folder if needed; the key → name index."""
        for delivery in batch:
            if not _KEY.fullmatch(delivery.key):
                raise DeliveryRefused(f"maildir: refusing unsafe delivery key {delivery.key!r}")
        if not self._opened:
            self._create()
        self._load_flush()
        if self._syncfs is not None and self._sync_fd < 0:  # delivered without open()
            self._sync_fd = self._open_sync_fd()
        if self._names is None:
            self._names = _KeyIndex(self.directory)
        return self._names

    def _stage_batch(self, batch: list[Delivery]) -> list[Staged]:
        """Write every message whose key is neither held nor already staged into ``tmp/``."""
        staging = self._staging
        handles: list[Staged] = []
        written: list[_Staged] = []
        try:
            names = self._prepare(batch)
            for delivery in batch:
                held = names.get(delivery.key) or staging.get(delivery.key)
                if held is not None:  # already in new/ or cur/, or staged by this batch
                    handles.append(_Staged(delivery, None, held))
                    continue
                item = self._stage(delivery, written)
                staging[delivery.key] = item.name
                handles.append(item)
        except OSError as exc:
            self._remove(written)
            raise self._error(exc) from exc
        if written:
            self._nudge()
        return handles

    def _stage(self, delivery: Delivery, written: list[_Staged]) -> _Staged:
        """Write one message (CRLF → LF) into ``tmp/``; append it to ``written`` first so
        a failure half-way still gets the partial file removed."""
        stem = f"{int(self._clock.now().timestamp())}.{delivery.key}.{self._host}"
        tmp = f"{self._tmp_dir}/{stem},P{os.getpid()}"  # str paths: 2,000 files add up
        if not self._trace and (linked := self._link(delivery.message, tmp)) is not None:
            item = _Staged(delivery, tmp, f"{stem},S={linked}")
            written.append(item)
            return item
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        item = _Staged(delivery, tmp, stem)
        written.append(item)
        size = 0
        chunks = delivery.message.lf_chunks()
        if self._trace:
            trace = trace_lines(delivery, self.name, self._clock.now())  # whole CRLF lines
            chunks = itertools.chain([trace.replace(b"\r\n", b"\n")], chunks)
        try:
            for piece in chunks:
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

    def _link(self, message: SpooledMessage, tmp: str) -> int | None:
        """Name the message's LF copy ``tmp`` (see the module docstring); its size, or
        None when it has none this sink can name, and the bytes must be written."""
        size = message.link_lf(tmp)
        if size is not None and self._fsync and self._syncfs is None:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return size

    def _commit_batch(self, handles: list[_Staged]) -> list[Receipt]:
        """Make the staged files durable, then move them into ``new/`` (module docstring)."""
        written = [item for item in handles if item.tmp is not None]
        try:
            if written:
                self._commit(written)
        except OSError as exc:
            self._remove(written)
            self._names = None  # some renames may have happened: rescan next time
            raise self._error(exc) from exc
        names = self._names if self._names is not None else _KeyIndex(self.directory)
        self._names = names
        renamed = {id(item) for item in written}
        receipts = []
        for item in handles:
            # What this commit renamed is named by its handle: asking the index would
            # cost it a scan for names (the keys are there now, see _KeyIndex).
            name = item.name if id(item) in renamed else names.get(item.delivery.key)
            if name is None:  # a follower whose first copy was discarded
                raise DeliveryError(f"maildir: {item.delivery.key} was discarded, not stored")
            receipts.append(Receipt(self.name, name))
        return receipts

    def _commit(self, written: list[_Staged]) -> None:
        new_dir = f"{self.directory}/new"
        if self._syncfs is not None:
            self._flush_filesystem()
        names = self._names
        for item in written:
            assert item.tmp is not None
            # If this fails half-way, the files already renamed are complete and
            # durable (found again by find()); _remove() takes the rest out of tmp/.
            os.rename(item.tmp, f"{new_dir}/{item.name}")
            item.tmp, item.done = None, True
            self._staging.pop(item.delivery.key, None)
            if names is not None:
                names[item.delivery.key] = item.name
        self._sync_dir(Path(new_dir))

    def _flush_filesystem(self) -> None:
        assert self._syncfs is not None
        if self._sync_fd < 0:  # committed without open() or stage()
            self._sync_fd = self._open_sync_fd()
        if self._syncfs(self._sync_fd) != 0:
            import ctypes  # already loaded by _load_syncfs

            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), self._tmp_dir)

    def _remove(self, staged: Sequence[_Staged]) -> None:
        """Remove what is still in ``tmp/``; files already in ``new/`` are complete."""
        for item in staged:
            if item.tmp is None:
                continue
            if self._staging.get(item.delivery.key) == item.name:
                del self._staging[item.delivery.key]
            try:
                os.unlink(item.tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("maildir: cannot remove %s: %s", item.tmp, exc.strerror)
            item.tmp = None

    def _error(self, exc: OSError) -> DeliveryError:
        where = exc.filename or self.directory
        return DeliveryError(f"maildir: cannot store in {where}: {exc.strerror or exc}")

    def _clean_tmp(self) -> None:
        """Remove files in ``tmp/`` untouched for 36 hours (the Maildir convention):
        what a killed run staged and never committed. Younger ones may be another
        process's messages being written right now."""
        limit = time.time() - TMP_MAX_AGE
        with contextlib.suppress(FileNotFoundError), os.scandir(self._tmp_dir) as it:
            for entry in it:
                try:
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and max(info.st_atime, info.st_mtime) < limit:
                        os.unlink(entry.path)
                        log.info("maildir: removed stale %s", entry.path)
                except FileNotFoundError:
                    continue  # committed (or removed) by another pass since it was listed
                except OSError as exc:
                    log.warning("maildir: cannot remove %s: %s", entry.path, exc.strerror)

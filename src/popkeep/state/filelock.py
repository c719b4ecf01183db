"""The SQLite store's account locks: one ``flock``-ed file per account beside the database.

Owns: :class:`FileLocks`, the :class:`~popkeep.state.base.AccountLocks` of every
store kept in one file on one machine. The lock of account *a* of the database
``state.db`` is ``state.db.<first 16 hex digits of sha256(a)>.lock`` (mode 0600,
its directory created 0700): an exclusive, non-blocking ``flock(2)``. The kernel
drops it when the holder's file descriptor closes, so a killed process never
leaves an account locked. Must not: open the database (``App.passes`` takes the
locks before the store is loaded, to start logging in sooner) or import
``sqlite3``; never wait for a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from popkeep.errors import StateError


class FileLocks:
    """Account locks as lock files beside the database file at ``database``."""

    def __init__(self, database: Path) -> None:
        self.database = database

    def path(self, account: str) -> Path:
        """The lock file of ``account`` (a digest: an account name never becomes a path)."""
        digest = hashlib.sha256(account.encode("utf-8")).hexdigest()[:16]
        return self.database.with_name(f"{self.database.name}.{digest}.lock")

    @contextmanager
    def lock(self, account: str) -> Iterator[bool]:
        """Yield True while this holds ``account``'s lock, False if anyone else does
        (another process, or another ``lock`` call in this one: flock locks belong to
        an open file, not to a process). Released on leaving the block."""
        path = self.path(account)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateError(f"account lock {path}: cannot create: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the last descriptor of the file releases the flock

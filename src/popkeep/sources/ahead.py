"""A session opened ahead: log in on a worker thread while the process finishes starting.

Owns: running a :data:`~popkeep.sources.base.SessionFactory` on a thread as soon
as the account is known (and locked), and handing its session, or its error, to
the first caller. Why: a ``popkeep fetch`` with nothing new spends most of its
time waiting for the server (connecting, logging in, the server opening a large
mailbox: ≈ 60 ms for 20,000 messages on Dovecot) and on its own start-up (the
collector's modules, the state database): one can run during the other
(bench/README.md, "Round 7"). Must not: be awaited inside a running event loop
(its first call blocks until the login ends); ``App.poll`` drives it without one.
"""

from __future__ import annotations

import threading

from popkeep.sources.base import SessionFactory, SourceSession
from popkeep.transport.base import drive


class OpenedAhead:
    """A session factory whose first call returns the session the constructor began.

    Later calls connect anew through ``factory``. A session nobody will take is
    closed (without QUIT: nothing was marked for deletion) once :meth:`discard`
    is called, by it or, if the login is still running then, by the login thread
    when it ends: discarding never waits for a slow server.
    """

    def __init__(self, factory: SessionFactory, name: str) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._session: SourceSession | None = None
        self._error: BaseException | None = None
        self._taken = False  # the first call happened (it waits for the thread)
        self._discarded = False
        self._thread = threading.Thread(target=self._open, name=f"popkeep-login-{name}",
                                        daemon=True)
        self._thread.start()

    def _open(self) -> None:
        # Opened while no event loop runs in this thread: the stream does blocking
        # I/O, so the factory's coroutine never suspends (transport.tcp).
        try:
            session = drive(self._factory())
        except BaseException as exc:  # handed to the caller, in its thread
            self._error = exc
            return
        with self._lock:
            keep = not self._discarded
            if keep:
                self._session = session
        if not keep:
            drive(session.close())

    async def __call__(self) -> SourceSession:
        with self._lock:
            first = not (self._taken or self._discarded)
            self._taken = True
        if not first:
            return await self._factory()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._session is not None
        return self._session

    def discard(self) -> None:
        """Close the session unless a caller took it (now, or when its login ends)."""
        with self._lock:
            if self._taken or self._discarded:
                return
            self._discarded = True
            session, self._session = self._session, None
        if session is not None:
            drive(session.close())

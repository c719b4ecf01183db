"""A scriptable POP3 server for the demo, the fast tests and misbehaviour tests.

Owns the server side of RFC 1939 (with RFC 2449 CAPA and response codes,
RFC 2595 STLS, RFC 5034 AUTH PLAIN, APOP) over asyncio streams on the loopback
interface only, a per-session record of every line received (so tests can
prove a password never travelled), and a :class:`ServerThread` that runs it
on its own loop for synchronous and subprocess-based tests. The maildrop and
its UPDATE rule live in :mod:`popkeep.testing.mailbox`; the scripted faults in
:mod:`popkeep.testing.misbehaviour`. It must not depend on popkeep's POP3
client, and it never listens on anything but loopback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

from popkeep.errors import ConnectError
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.misbehaviour import Misbehaviour
from popkeep.testing.session import Session, SessionLog, close_quietly

__all__ = ["ScriptedPOP3Server", "ServerThread", "SessionLog"]

logger = logging.getLogger(__name__)

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_LINE = 8192  # RFC 1939 §3 allows 255-octet commands; AUTH lines are longer


def _reveals(line: bytes, secret: bytes) -> bool:
    """Whether ``line`` carries ``secret`` in clear or inside a base64 token."""
    if secret in line:
        return True
    for token in line.split():
        with contextlib.suppress(binascii.Error, ValueError):
            if secret in base64.b64decode(token, validate=True):
                return True
    return False


class ScriptedPOP3Server:
    """An asyncio POP3 server over a :class:`Mailbox`; use ``async with`` or start/stop.

    ``tls_context`` (a server-side context) enables STLS when ``stls`` is true,
    or wraps every connection when ``implicit_tls`` is true (POP3S).
    ``capabilities`` are extra CAPA lines. ``sasl``: the AUTH mechanisms offered (PLAIN,
    XOAUTH2, OAUTHBEARER; for the last two, ``password`` is the one valid access
    token). ``misbehave`` scripts faults.
    """

    def __init__(
        self,
        mailbox: Mailbox | None = None,
        *,
        user: str = "demo",
        password: str = "demo",  # noqa: S107  (the demo account)
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        stls: bool = True,
        capabilities: Sequence[str] = (),
        apop: bool = True,
        sasl: Sequence[str] = ("PLAIN",),
        misbehave: Misbehaviour | None = None,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError("the scripted server listens on loopback only")
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        self.mailbox = mailbox if mailbox is not None else Mailbox()
        self.user, self.password = user, password
        self.host, self._port = host, port
        self.tls_context, self.implicit_tls = tls_context, implicit_tls
        self.stls = stls and tls_context is not None and not implicit_tls
        self.capabilities, self.apop = tuple(capabilities), apop
        self.sasl = tuple(sasl)
        self.misbehave = misbehave or Misbehaviour()
        self.sessions: list[SessionLog] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = threading.Condition()  # a login or a session's end

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port

    async def start(self) -> int:
        """Listen; returns the port (an ephemeral one when ``port=0``)."""
        self._server = await asyncio.start_server(
            self._handle, self.host, self._port, limit=_MAX_LINE,
            ssl=self.tls_context if self.implicit_tls else None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.debug("scripted POP3 server on %s:%s", self.host, self._port)
        return self._port

    async def stop(self) -> None:
        """Stop listening and end every open session (no UPDATE for them)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> ScriptedPOP3Server:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def received_password(self, password: str | bytes, *, plaintext_only: bool = False) -> bool:
        """Whether ``password`` ever arrived (PASS, AUTH PLAIN base64, …); APOP digests don't.

        With ``plaintext_only``, only lines received before TLS count. The search
        is by substring, so use a password that differs from the user name.
        """
        secret = password.encode() if isinstance(password, str) else password
        if not secret:
            raise ValueError("an empty password cannot be searched for")
        for session in list(self.sessions):
            lines = session.plaintext_lines if plaintext_only else session.lines
            if any(_reveals(line, secret) for line in list(lines)):
                return True
        return False

    def wait_for_sessions(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` sessions have ended; False on timeout.

        Call from another thread than the server's loop (e.g. with :class:`ServerThread`).
        """
        return self.wait_until(lambda: sum(s.closed for s in self.sessions) >= count, timeout)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` holds (checked now and after every login and
        every session's end); False on timeout. Call from another thread than the
        server's loop."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def changed(self) -> None:
        """Wake :meth:`wait_until` (the sessions call it when one logs in)."""
        with self._changed:
            self._changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = SessionLog(number=len(self.sessions) + 1, tls=self.implicit_tls)
        self.sessions.append(record)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await Session(self, reader, writer, record).run()
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            logger.debug("session %d ended: %r", record.number, exc)
        except asyncio.CancelledError:  # server stopping: end quietly, nothing is deleted
            logger.debug("session %d cancelled", record.number)
        finally:
            await close_quietly(writer)
            record.closed = True
            self.changed()
            self._tasks.discard(task)


class ServerThread:
    """Runs a :class:`ScriptedPOP3Server` on its own event loop in a daemon thread."""

    def __init__(self, server: ScriptedPOP3Server) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def start(self, timeout: float = 10.0) -> int:
        """Start serving; returns the port. Raises ConnectError if it cannot listen."""
        self._thread = threading.Thread(target=self._run, name="scripted-pop3", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ConnectError("scripted POP3 server did not start in time")
        if self._error is not None:
            raise ConnectError(f"scripted POP3 server failed to start: {self._error}") \
                from self._error
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (open sessions end without UPDATE) and join the thread."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_teardown)
        try:
            loop.run_until_complete(self.server.start())
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _quiet_teardown(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The server loop's exception handler: a client that resets the connection while
    an endless response is being written can make CPython 3.11's socket transport run
    its connection-lost callback a second time (``AttributeError`` on the transport's
    cleared protocol). That is teardown noise of the test server, not the client's
    doing: logged at debug, so a test that counts popkeep's stderr lines sees only
    popkeep's. Everything else goes to the default handler."""
    handle = repr(context.get("handle", ""))
    if isinstance(context.get("exception"), AttributeError) and "_call_connection_lost" in handle:
        logger.debug("ignored teardown error: %s", context.get("message"))
        return
    loop.default_exception_handler(context)

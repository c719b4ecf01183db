"""The cron edge's TCP stream: blocking calls while no event loop runs, then the loop's.

Owns: :class:`LooplessStream`, a :class:`~popkeep.transport.tcp.TCPStream` opened
while no event loop runs (a ``popkeep fetch`` poll looks at every account before
it starts one). Until a loop needs it, its socket does blocking I/O, so its
``async`` methods never suspend: a caller may drive them to completion without a
loop, and a poll with nothing new never imports asyncio (a fifth to a quarter of
such a poll's instructions; bench/README.md, "Round 5"). The first operation
inside a running loop moves the same socket onto that loop (once; never back),
and from then on it is the ordinary stream. TLS lives over memory buffers in
:mod:`.tcp`, so a session may move after its handshake.

Must not: be imported by anything but ``popkeep.cli.quick`` (an import-linter
contract): the sources, the collector and a long-running service know only the
asyncio stream of :mod:`.tcp`.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import TYPE_CHECKING

from popkeep.transport.base import TLSSettings
from popkeep.transport.tcp import (
    READ_CHUNK,
    Progress,
    TCPStream,
    _map_errors,
    open_tcp,
    secure,
)

if TYPE_CHECKING:
    import asyncio


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any (without importing asyncio)."""
    # None until asyncio is imported (and while another thread is still importing it:
    # no loop can run in this thread before that import ends).
    current = getattr(sys.modules.get("asyncio"), "get_running_loop", None)
    if current is None:
        return None
    try:
        loop: asyncio.AbstractEventLoop = current()
    except RuntimeError:
        return None
    return loop


class LooplessStream(TCPStream):
    """A stream whose socket blocks until the first operation inside a running loop
    moves it onto that loop (see the module docstring)."""

    async def _join_loop(self) -> None:
        """Inside a running event loop, move onto it (from blocking mode; once)."""
        if self._loop is None and running_loop() is not None:
            from popkeep.transport.onloop import OnLoop

            with _map_errors("joining the event loop"):
                self._loop = await OnLoop.adopt(self, self._sock)

    def _send_raw(self, raw: bytes) -> None:
        if self._loop is None:
            self._sock.sendall(raw)
        else:
            super()._send_raw(raw)

    async def _send(self, raw: bytes) -> None:
        if self._loop is None:
            self._sock.settimeout(self._read_timeout)
            self._sock.sendall(raw)
        else:
            await super()._send(raw)

    async def _fill(self, timeout: float) -> None:
        if self._loop is not None:
            await super()._fill(timeout)
            return
        deadline = time.monotonic() + timeout
        while not self.has_data():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
            self.received(self._sock.recv(READ_CHUNK))

    async def _await_handshake_data(self, timeout: float) -> None:
        if self._loop is not None:
            await super()._await_handshake_data(timeout)
            return
        self._sock.settimeout(timeout)
        raw = self._sock.recv(READ_CHUNK)
        if not raw:
            raise ConnectionResetError("the server closed the connection")
        self.received(raw)


async def open_tcp_loopless(
    host: str,
    port: int,
    *,
    tls: TLSSettings | None,
    connect_timeout: float,
    read_timeout: float,
    progress: Progress | None = None,
) -> TCPStream:
    """:func:`popkeep.transport.tcp.open_tcp`, but with no running loop the connection
    is made with blocking calls (and this coroutine never suspends) and the stream is
    a :class:`LooplessStream`. Inside a running loop: the ordinary stream."""
    if running_loop() is not None:
        return await open_tcp(host, port, tls=tls, connect_timeout=connect_timeout,
                              read_timeout=read_timeout, progress=progress)
    with _map_errors(f"connecting to {host}:{port}"):
        # An ASCII name as bytes: getaddrinfo then skips loading the IDNA codec.
        name = host.encode("ascii") if host.isascii() else host
        sock = socket.create_connection((name, port), timeout=connect_timeout)  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = LooplessStream(sock, read_timeout, progress)
    return await secure(stream, tls)


async def open_stream(
    host: str, port: int, tls: TLSSettings | None, connect_timeout: float, read_timeout: float
) -> TCPStream:
    """:func:`open_tcp_loopless` with the positional signature of
    ``sources.pop3.StreamOpener``."""
    return await open_tcp_loopless(
        host, port, tls=tls, connect_timeout=connect_timeout, read_timeout=read_timeout
    )

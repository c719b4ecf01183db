"""The event-loop side of :class:`~popkeep.transport.tcp.TCPStream`.

Owns: connecting without blocking the loop, and carrying a stream's socket on
an asyncio transport: raw bytes in (handed to the stream, which decrypts), raw
bytes out, flow control both ways, timeouts. Imported only once a stream is used
inside a running loop, so a poll that needs no loop never loads asyncio.
Must not: know TLS or POP3 (the stream does both modes' TLS itself).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from popkeep.errors import TransportError
from popkeep.transport.tcp import READ_CHUNK

if TYPE_CHECKING:
    from popkeep.transport.tcp import TCPStream

_HIGH_WATER = 4 * READ_CHUNK  # pause the socket when this much plaintext is unread


async def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking socket to ``host:port`` (each address in turn)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address found for {host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise error


class _Protocol(asyncio.Protocol):
    """Hands the stream what the transport receives, until the connection is lost.

    It then lets go of the stream: the stream holds it (through :class:`OnLoop`), and
    that cycle would keep the connection's TLS state and buffers (≈ 100 KB of
    OpenSSL's memory the garbage collector does not count) until a full collection;
    ``popkeep serve`` polling 1,000 accounts piled up hundreds of MB of them
    (bench/README.md, "Round 10")."""

    def __init__(self, stream: TCPStream) -> None:
        self.stream: TCPStream | None = stream
        self.transport: asyncio.Transport | None = None
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = asyncio.Event()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        if stream is None:  # asyncio calls nothing after connection_lost
            return
        try:
            stream.received(data)
        except Exception as exc:  # e.g. a corrupt TLS record: the stream reports it
            stream.lost(exc)
            if self.transport is not None:
                self.transport.abort()
        self.readable.set()
        if stream.buffered() > _HIGH_WATER and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        stream = self.stream
        if stream is not None:
            try:
                stream.received(b"")
            except Exception as exc:
                stream.lost(exc)
        self.readable.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        stream, self.stream = self.stream, None  # see the class docstring
        if stream is not None:
            stream.lost(exc)  # keeps the first error (see TCPStream.lost)
        self.readable.set()
        self.writable.set()
        self.closed.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class OnLoop:
    """One stream's socket on the running loop's transport."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def adopt(cls, stream: TCPStream, sock: socket.socket) -> OnLoop:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _Protocol(stream), sock=sock)
        return cls(protocol)

    async def fill(self, stream: TCPStream, timeout: float) -> None:
        """Wait until the stream has plaintext or its end (TimeoutError after ``timeout`` s)."""
        readable = self._protocol.readable
        async with asyncio.timeout(timeout):
            while not stream.has_data():
                readable.clear()
                await readable.wait()

    async def handshake_data(self, timeout: float) -> None:
        """Wait for more bytes from the wire (during a TLS handshake)."""
        readable = self._protocol.readable
        async with asyncio.timeout(timeout):
            await readable.wait()
        readable.clear()

    def consumed(self, buffered: int) -> None:
        """The stream handed bytes out; ``buffered`` are left: resume reading if paused."""
        protocol = self._protocol
        if protocol.paused and buffered < READ_CHUNK and protocol.transport is not None:
            protocol.paused = False
            protocol.transport.resume_reading()

    def write(self, raw: bytes) -> None:
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            raise TransportError("connection is closed")
        transport.write(raw)

    async def drained(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._protocol.writable.wait()

    async def close(self) -> None:
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        try:
            async with asyncio.timeout(1):
                await self._protocol.closed.wait()
        except TimeoutError:
            pass

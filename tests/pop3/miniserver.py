"""A deliberately tiny asyncio POP3 server for the client's TCP/TLS tests.

Not the project's scripted test server (popkeep.testing.server): just enough
RFC 1939 to exercise the transport and the session, plus a few knobs for
misbehaviour (plaintext injection after STLS, stalling, an endless line).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

from popkeep.pop3.codec import stuff


@dataclass
class MiniServer:
    messages: list[bytes] = field(default_factory=list)
    tls: ssl.SSLContext | None = None  #: implicit TLS
    stls: ssl.SSLContext | None = None  #: offer STLS with this context
    inject_after_stls: bytes = b""
    pipelining: bool = True
    stall_on: bytes | None = None  #: never answer this verb
    endless_line: bool = False  #: RETR answers one 10 MB line
    received: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> MiniServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._stop.set()  # releases stalled handlers
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _capa(self, tls_active: bool) -> bytes:
        caps = [b"USER", b"UIDL", b"TOP"]
        if self.pipelining:
            caps.append(b"PIPELINING")
        if self.stls and not tls_active:
            caps.append(b"STLS")
        return b"+OK\r\n" + b"".join(c + b"\r\n" for c in caps) + b".\r\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        with contextlib.suppress(Exception):
            await self._dialogue(reader, writer)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls_active = self.tls is not None
        writer.write(b"+OK mini ready\r\n")
        while line := await reader.readline():
            cmd = line.rstrip(b"\r\n")
            self.received.append(cmd)
            verb, _, arg = cmd.partition(b" ")
            verb = verb.upper()
            if verb == self.stall_on:
                await self._stop.wait()
                return
            if verb == b"STLS" and self.stls is not None and not tls_active:
                writer.write(b"+OK begin TLS\r\n" + self.inject_after_stls)
                await writer.drain()
                await writer.start_tls(self.stls)
                tls_active = True
                continue
            writer.write(self._answer(verb, arg, tls_active))
            await writer.drain()
            if verb == b"QUIT":
                return

    def _answer(self, verb: bytes, arg: bytes, tls_active: bool) -> bytes:
        count, total = len(self.messages), sum(map(len, self.messages))
        if verb == b"CAPA":
            return self._capa(tls_active)
        if verb in (b"USER", b"PASS", b"NOOP", b"DELE", b"QUIT"):
            return b"+OK\r\n"
        if verb == b"STAT":
            return b"+OK %d %d\r\n" % (count, total)
        if verb == b"UIDL":
            lines = b"".join(b"%d uid-%d\r\n" % (i, i) for i in range(1, count + 1))
            return b"+OK\r\n" + lines + b".\r\n"
        if verb == b"LIST":
            lines = b"".join(b"%d %d\r\n" % (i, len(m)) for i, m in enumerate(self.messages, 1))
            return b"+OK\r\n" + lines + b".\r\n"
        if verb == b"RETR":
            if self.endless_line:
                return b"+OK\r\n" + b"x" * (10 << 20)
            number = int(arg)
            if not 1 <= number <= count:
                return b"-ERR no such message\r\n"
            return b"+OK\r\n" + stuff(self.messages[number - 1])
        return b"-ERR unknown command\r\n"

"""A scripted in-memory :class:`~popkeep.transport.base.Stream` for tests and the planner.

Owns: playing one side of a dialogue written as steps::

    stream = (MemoryStream()
              .reply(b"+OK ready\\r\\n")
              .expect(b"CAPA").reply(b"+OK\\r\\nSTLS\\r\\n.\\r\\n")
              .expect(b"STLS").reply(b"+OK go\\r\\n").handshake()
              .expect(b"CAPA") ...)

Lines the client writes are checked in order against the ``expect`` steps (the
client may write ahead of reading: pipelining). ``read`` returns ``reply``
steps in order but never passes an ``expect`` the client has not written yet.
``start_tls`` discards unread replies up to the ``handshake`` step, exactly as
a real transport discards buffered plaintext. ``eof`` makes reads return
``b""`` and writes fail; ``hang`` makes each read wait out its timeout and raise
NetworkTimeout (timeout tests).
A deviation from the script raises :class:`ScriptMismatch` (a test failure).
Must not: be used against real servers, or know POP3.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from popkeep.errors import NetworkTimeout, TransportError
from popkeep.transport.base import TLSInfo, TLSSettings

StepKind = Literal["expect", "reply", "handshake", "eof", "hang"]

MEMORY_TLS = TLSInfo("TLSv1.3", "MEMORY", "CN=memory", "CN=memory", "00" * 32)


class ScriptMismatch(AssertionError):
    """The client did something the script did not foresee."""


class MemoryStream:
    """A :class:`Stream` that follows a dialogue script. See the module docstring."""

    def __init__(self, *, tls: TLSInfo | None = None) -> None:
        self._steps: list[tuple[StepKind, bytes]] = []
        self._done: set[int] = set()  # satisfied expects, passed handshakes
        self._read_at = 0
        self._write_at = 0
        self._partial = b""
        self._tls = tls
        self.written: list[bytes] = []  #: every line the client wrote, without CRLF
        self.closed = False

    # -- script building -------------------------------------------------------------

    def _add(self, kind: StepKind, data: bytes = b"") -> MemoryStream:
        self._steps.append((kind, data))
        return self

    def expect(self, line: bytes) -> MemoryStream:
        """The client must write exactly ``line`` (without CRLF) next."""
        return self._add("expect", line)

    def reply(self, data: bytes) -> MemoryStream:
        """The client reads ``data`` next (possibly over several reads)."""
        return self._add("reply", data)

    def handshake(self) -> MemoryStream:
        """The client calls ``start_tls`` here."""
        return self._add("handshake")

    def eof(self) -> MemoryStream:
        """The server closes: reads return b"", writes raise TransportError."""
        return self._add("eof")

    def hang(self) -> MemoryStream:
        """The server goes silent: reads wait out their timeout (NetworkTimeout)."""
        return self._add("hang")

    @property
    def finished(self) -> bool:
        """Whether every expected line was written and every reply read."""
        return all(
            i in self._done if kind in ("expect", "handshake") else i < self._read_at
            for i, (kind, _) in enumerate(self._steps)
            if kind != "eof" and kind != "hang"
        )

    # -- Stream ----------------------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float) -> bytes:
        while True:
            kind, data = self._step(self._read_at, "read")
            if kind == "expect" or (kind == "handshake" and self._read_at in self._done):
                if self._read_at not in self._done:
                    raise ScriptMismatch(f"client reads before sending {data!r}")
                self._read_at += 1
            elif kind == "reply":
                if len(data) > max_bytes:
                    self._steps[self._read_at] = ("reply", data[max_bytes:])
                else:
                    self._read_at += 1
                return data[:max_bytes]
            elif kind == "eof":
                return b""
            elif kind == "hang":
                await asyncio.sleep(timeout)
                raise NetworkTimeout(f"no data within {timeout}s (scripted silence)")
            else:
                raise ScriptMismatch("client reads where the script expects start_tls")

    async def write(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\r\n")
        for line in lines:
            self.written.append(line)
            self._match(line)

    def _match(self, line: bytes) -> None:
        while True:
            kind, expected = self._step(self._write_at, f"write {line!r}")
            if kind == "reply" or (kind == "handshake" and self._write_at in self._done):
                self._write_at += 1
            elif kind == "expect":
                if line != expected:
                    raise ScriptMismatch(f"client wrote {line!r}, script expects {expected!r}")
                self._done.add(self._write_at)
                self._write_at += 1
                return
            elif kind == "eof":
                raise TransportError("connection closed by the (scripted) server")
            elif kind == "hang":
                return
            else:
                raise ScriptMismatch(f"client wrote {line!r} before start_tls")

    def _step(self, index: int, doing: str) -> tuple[StepKind, bytes]:
        if index >= len(self._steps):
            raise ScriptMismatch(f"script exhausted; client tried to {doing}")
        return self._steps[index]

    async def start_tls(self, settings: TLSSettings) -> TLSInfo:
        """Drop unread replies up to the ``handshake`` step (buffered plaintext), then 'encrypt'."""
        while True:
            kind, data = self._step(self._read_at, "start_tls")
            if kind == "handshake":
                self._done.add(self._read_at)
                self._read_at += 1
                self._tls = MEMORY_TLS
                return self._tls
            if kind == "expect" and self._read_at not in self._done:
                raise ScriptMismatch(f"start_tls before the client sent {data!r}")
            if kind in ("eof", "hang"):
                raise ScriptMismatch("start_tls where the script has no handshake")
            self._read_at += 1

    async def close(self) -> None:
        self.closed = True

    @property
    def tls(self) -> TLSInfo | None:
        return self._tls

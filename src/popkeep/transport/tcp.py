"""TCP (and TLS) :class:`~popkeep.transport.base.Stream` over asyncio.

Owns: connecting with a timeout, implicit TLS and in-place upgrade (STLS),
certificate verification and pinning, read timeouts, and translating OSError /
ssl.SSLError / TimeoutError into popkeep transport errors at this boundary.
Must not: know POP3, retry, or log secrets.

A small ``asyncio.Protocol`` is used instead of ``StreamReader`` because the
upgrade must drop plaintext already buffered before the TLS handshake
(CVE-2021-39272 class injection) and StreamReader has no public way to do so.

Verification: without a pin, the system CAs (or ``ca_file`` alone) verify the
chain and the host name. With ``fingerprint`` set, the SHA-256 of the server's
DER leaf certificate must equal the pin; chain and name are then not checked
(so a self-signed certificate is accepted if and only if it matches the pin).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections import deque
from collections.abc import Iterator

from popkeep.errors import ConnectError, NetworkTimeout, TLSError, TransportError
from popkeep.transport.base import TLSInfo, TLSSettings

logger = logging.getLogger(__name__)

READ_CHUNK = 256 << 10
_HIGH_WATER = 4 * READ_CHUNK  # pause the socket when this much is buffered unread


@contextlib.contextmanager
def _map_errors(doing: str) -> Iterator[None]:
    """Translate foreign exceptions raised while ``doing`` something into popkeep errors."""
    try:
        yield
    except TimeoutError as exc:
        raise NetworkTimeout(f"timed out while {doing}") from exc
    except ssl.SSLError as exc:  # includes SSLCertVerificationError
        raise TLSError(f"TLS failed while {doing}: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"network error while {doing}: {exc}") from exc


class _Chunks:
    """Received bytes as the list of chunks the event loop handed over.

    Appending keeps the chunk (no copy); :meth:`take` hands a chunk out whole
    when it fits, so a body usually crosses the transport without being copied
    (a ``bytearray`` would copy every byte in and twice out)."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)

    def clear(self) -> None:
        self._chunks.clear()
        self._size = 0

    def take(self, max_bytes: int) -> bytes:
        """1..max_bytes bytes from the front (whole chunks joined while they fit)."""
        chunks = self._chunks
        first = chunks.popleft()
        if len(first) > max_bytes:
            chunks.appendleft(first[max_bytes:])
            first = first[:max_bytes]
        elif chunks and len(first) + len(chunks[0]) <= max_bytes:
            parts = [first]
            size = len(first)
            while chunks and size + len(chunks[0]) <= max_bytes:
                part = chunks.popleft()
                parts.append(part)
                size += len(part)
            first = b"".join(parts)
        self._size -= len(first)
        return first


class _Protocol(asyncio.Protocol):
    """Buffers received bytes with flow control; the stream reads from it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = _Chunks()
        self.eof = False
        self.error: BaseException | None = None
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer.append(data)
        self.readable.set()
        if len(self.buffer) > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self.readable.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self.readable.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def take(self, max_bytes: int) -> bytes:
        data = self.buffer.take(max_bytes)
        if not self.buffer:
            self.readable.clear()
        if self.paused and len(self.buffer) < READ_CHUNK and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


def tls_context(settings: TLSSettings) -> ssl.SSLContext:
    """The client context for ``settings`` (see the module docstring for pinning)."""
    if settings.fingerprint:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin, checked after the handshake, replaces it
    else:
        cafile = str(settings.ca_file) if settings.ca_file else None
        with _map_errors("loading the CA file"):
            ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _normalise_pin(pin: str) -> str:
    pin = pin.strip().lower()
    if pin.startswith("sha256:"):
        pin = pin[len("sha256:") :]
    return pin.replace(":", "")


_SHORT_NAMES = {
    "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
    "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
}


def _name(cert_field: object) -> str:
    """An X.509 name from ``getpeercert()`` ((('commonName','x'),),) as "CN=x,O=y"."""
    parts: list[str] = []
    if isinstance(cert_field, tuple):
        for rdn in cert_field:
            parts.extend(f"{_SHORT_NAMES.get(k, k)}={v}" for k, v in rdn)
    return ",".join(parts)


def tls_info(ssl_object: ssl.SSLObject, settings: TLSSettings) -> TLSInfo:
    """Describe the handshake; raise TLSError when the leaf does not match the pin."""
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        raise TLSError("the server sent no certificate")
    fingerprint = hashlib.sha256(der).hexdigest()
    if settings.fingerprint and _normalise_pin(settings.fingerprint) != fingerprint:
        raise TLSError(f"certificate fingerprint sha256:{fingerprint} does not match the pin")
    cert = ssl_object.getpeercert() or {}  # empty when not verified (pinned)
    cipher = ssl_object.cipher()
    return TLSInfo(
        version=ssl_object.version() or "",
        cipher=cipher[0] if cipher else "",
        subject=_name(cert.get("subject")),
        issuer=_name(cert.get("issuer")),
        fingerprint_sha256=fingerprint,
    )


class TCPStream:
    """A :class:`Stream` over one TCP connection, optionally TLS."""

    def __init__(self, protocol: _Protocol, read_timeout: float, info: TLSInfo | None) -> None:
        self._protocol = protocol
        self._read_timeout = read_timeout
        self._tls = info

    @property
    def tls(self) -> TLSInfo | None:
        return self._tls

    async def read(self, max_bytes: int) -> bytes:
        proto = self._protocol
        if not proto.buffer and not proto.eof:
            with _map_errors("reading"):
                async with asyncio.timeout(self._read_timeout):
                    while not proto.buffer and not proto.eof:
                        proto.readable.clear()
                        await proto.readable.wait()
        if proto.buffer:
            return proto.take(max_bytes)
        if proto.error is not None:
            raise TransportError(f"connection lost: {proto.error}") from proto.error
        return b""

    async def write(self, data: bytes) -> None:
        proto = self._protocol
        if proto.transport is None or proto.transport.is_closing():
            raise TransportError("connection is closed")
        with _map_errors("writing"):
            proto.transport.write(data)
            async with asyncio.timeout(self._read_timeout):
                await proto.writable.wait()
        if proto.error is not None:
            raise TransportError(f"connection lost: {proto.error}") from proto.error

    async def start_tls(self, settings: TLSSettings) -> TLSInfo:
        proto = self._protocol
        if proto.transport is None or proto.eof:
            raise TransportError("connection closed before the TLS handshake")
        dropped = len(proto.buffer)
        proto.buffer.clear()  # plaintext sent before the handshake is never trusted
        proto.readable.clear()
        if dropped:
            logger.warning("discarded %d bytes of plaintext received before TLS", dropped)
        ctx = tls_context(settings)
        loop = asyncio.get_running_loop()
        with _map_errors("negotiating TLS"):
            async with asyncio.timeout(self._read_timeout):
                new = await loop.start_tls(
                    proto.transport, proto, ctx, server_hostname=settings.server_hostname
                )
        if new is None:
            raise TLSError("TLS upgrade failed")
        assert isinstance(new, asyncio.Transport)
        proto.transport = new
        proto.paused = False
        self._tls = tls_info(new.get_extra_info("ssl_object"), settings)
        return self._tls

    async def close(self) -> None:
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await _closed(self._protocol)


async def _closed(proto: _Protocol) -> None:
    while not proto.eof:
        proto.readable.clear()
        await proto.readable.wait()


async def open_tcp(
    host: str,
    port: int,
    *,
    tls: TLSSettings | None,
    connect_timeout: float,
    read_timeout: float,
) -> TCPStream:
    """Connect to ``host:port``; with ``tls``, handshake at once (implicit TLS, port 995).

    Raises ConnectError, NetworkTimeout or TLSError (wrong certificate or pin).
    """
    loop = asyncio.get_running_loop()
    ctx = tls_context(tls) if tls else None
    hostname = tls.server_hostname if tls else None
    with _map_errors(f"connecting to {host}:{port}"):
        async with asyncio.timeout(connect_timeout):
            transport, proto = await loop.create_connection(
                _Protocol, host, port, ssl=ctx, server_hostname=hostname
            )
    info = None
    if tls is not None:
        try:
            info = tls_info(transport.get_extra_info("ssl_object"), tls)
        except TLSError:
            transport.close()
            raise
    return TCPStream(proto, read_timeout, info)


async def open_stream(
    host: str, port: int, tls: TLSSettings | None, connect_timeout: float, read_timeout: float
) -> TCPStream:
    """:func:`open_tcp` with the positional signature of ``pop3.client.StreamOpener``."""
    return await open_tcp(
        host, port, tls=tls, connect_timeout=connect_timeout, read_timeout=read_timeout
    )

"""TCP (and TLS) :class:`~popkeep.transport.base.Stream` on the running event loop.

Owns: connecting with a timeout, implicit TLS and in-place upgrade (STLS),
certificate verification and pinning, read timeouts, and translating OSError /
ssl.SSLError / TimeoutError into popkeep transport errors at this boundary.
Must not: know POP3, retry, or log secrets.

**asyncio only.** :func:`open_tcp` connects inside the running loop and the
socket is carried by an asyncio transport (:mod:`.onloop`). The socket's I/O goes
through a few methods (``_fill``, ``_await_handshake_data``, ``_send``,
``_send_raw``, ``_consumed``, ``_close_socket``): the cron edge's stream, which
starts with blocking calls while no loop runs and moves onto the first loop it
meets, overrides them in a module of its own that only ``popkeep.cli.quick``
imports (``transport/loopless.py``; an import-linter contract).

**TLS is ours over memory buffers** (``ssl.SSLObject`` + ``MemoryBIO``), so a
stream's TLS does not depend on who carries its bytes (asyncio cannot adopt an
``ssl.SSLSocket``). An upgrade (STLS) first drops plaintext already buffered
(CVE-2021-39272 class injection).

Verification: without a pin, the system CAs (or ``ca_file`` alone) verify the
chain and the host name. With ``fingerprint`` set, the SHA-256 of the server's
DER leaf certificate must equal the pin; chain and name are then not checked
(so a self-signed certificate is accepted if and only if it matches the pin).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from popkeep.errors import (
    CertificateUntrusted,
    ConnectError,
    LimitExceeded,
    NetworkTimeout,
    TLSError,
    TLSMismatch,
    TransportError,
)
from popkeep.transport.base import TLSInfo, TLSSettings

if TYPE_CHECKING:
    import ssl

    from popkeep.transport.onloop import OnLoop

logger = logging.getLogger(__name__)

READ_CHUNK = 256 << 10
#: The progress rule (docs/guarantees.md): once a reply has begun, every
#: PROGRESS_WINDOW seconds spent waiting for it must bring PROGRESS_MIN_RATE
#: octets per second on average. Read at connect time (tests lower them).
PROGRESS_MIN_RATE = 1024
PROGRESS_WINDOW = 60.0


class Progress:
    """The progress rule of one stream: a minimum rate over a window of waiting.

    An *exchange* runs from one write (a command) to the next. Its clock starts
    with the first octet of the reply, so the server's thinking time before it
    answers is left to the per-read timeout, and it runs only while the reader
    waits for data, so time the client spends elsewhere (delivering) does not
    count. Each time the clock passes a whole window, the octets received
    since it started must average ``min_rate`` per second, else LimitExceeded:
    a server that trickles or keeps stalling just short of the read timeout is
    cut within one window, whatever the timeouts say.
    """

    __slots__ = ("checked", "got", "min_rate", "waited", "window")

    def __init__(self, min_rate: float, window: float) -> None:
        self.min_rate, self.window = min_rate, window
        self.got = 0
        self.waited = self.checked = 0.0

    def restart(self) -> None:
        """A new exchange begins (the client wrote a command)."""
        self.got = 0
        self.waited = self.checked = 0.0

    def record(self, octets: int, waited: float) -> None:
        """``octets`` were read after waiting ``waited`` seconds for them."""
        if self.got:
            self.waited += waited
        self.got += octets
        if self.waited - self.checked < self.window:
            return
        self.checked = self.waited
        if self.got < self.min_rate * self.waited:
            raise LimitExceeded(
                f"the server is too slow: {self.got} octets in {self.waited:.0f} s of "
                f"waiting, under the minimum of {self.min_rate:g} octets/s"
            )


@contextlib.contextmanager
def _map_errors(doing: str) -> Iterator[None]:
    """Translate foreign exceptions raised while ``doing`` something into popkeep errors."""
    try:
        yield
    except TimeoutError as exc:
        raise NetworkTimeout(f"timed out while {doing}") from exc
    except OSError as exc:
        ssl = sys.modules.get("ssl")  # imported by the first TLS connection (_TLS)
        if ssl is not None and isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or exc.reason or str(exc)
            raise CertificateUntrusted(
                f"TLS failed while {doing}: certificate verify failed: {reason}"
            ) from exc
        if ssl is not None and isinstance(exc, ssl.SSLError):
            raise TLSError(f"TLS failed while {doing}: {exc}") from exc
        raise ConnectError(f"network error while {doing}: {exc}") from exc


class _Chunks:
    """Received bytes as the list of chunks they arrived in.

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


class _TLS:
    """One TLS connection over memory buffers: bytes in from the wire, bytes out to it."""

    __slots__ = ("_in", "_out", "done", "first", "obj")

    def __init__(self, settings: TLSSettings) -> None:
        import ssl  # here, not at the top: a plaintext connection never needs it

        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        name = settings.server_hostname
        # An ASCII name goes in as bytes, which ssl only decodes: as a str it would be
        # encoded with the "idna" codec, whose first use loads stringprep and
        # unicodedata (≈ 8 ms on every TLS start; bench/README.md, "Round 7").
        self.obj = tls_context(settings).wrap_bio(
            self._in, self._out, server_hostname=name.encode("ascii") if name.isascii() else name
        )
        self.done = False
        self.first = b""  #: the start of what the peer sent first (see plaintext())

    def handshake(self) -> bool:
        """One handshake step; True once it is complete. Send :meth:`outgoing` after it."""
        import ssl

        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        self.done = True
        return True

    def feed(self, raw: bytes) -> None:
        """Bytes from the wire; ``b""``: the peer closed the connection."""
        if raw:
            if not self.first:
                self.first = raw[:80]
            self._in.write(raw)
        else:
            self._in.write_eof()

    def outgoing(self) -> bytes:
        return self._out.read()

    def plaintext(self) -> str | None:
        """The peer's first line if it answered in plain text instead of a TLS record.

        A TLS record begins with its content type, 20..24 (RFC 8446 §5.1); a text
        greeting ("+OK …", "220 …") begins with a printable character and has no
        control characters other than CR, LF and TAB in its first line."""
        first = self.first
        if not first or not 0x20 <= first[0] < 0x7F:
            return None
        line = first.split(b"\n", 1)[0].rstrip(b"\r")
        if any((c < 0x20 and c != 0x09) or c >= 0x7F for c in line):
            return None
        return line.decode("ascii")

    def decrypt(self, into: _Chunks) -> bool:
        """Move every whole record fed so far into ``into``; True at the end of the stream
        (the peer's close_notify, or the connection closed without one)."""
        import ssl

        read = self.obj.read
        while True:
            try:
                data = read(READ_CHUNK)
            except ssl.SSLWantReadError:
                return False
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return True
            if not data:
                return True
            into.append(data)

    def encrypt(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self._out.read()

    def close(self) -> bytes:
        """Our close_notify, to send before closing the socket."""
        import ssl

        with contextlib.suppress(ssl.SSLError):
            self.obj.unwrap()
        return self._out.read()


def tls_context(settings: TLSSettings) -> ssl.SSLContext:
    """The client context for ``settings`` (see the module docstring for pinning).

    Shared: made once per process for each ``settings`` and trust store, and reused by
    every later connection with them (``popkeep serve`` connects to each account every
    few minutes; making a context costs ≈ 0.3 ms of CPU with a one-certificate CA file,
    tens of ms where the system bundle is parsed; bench/README.md, "Round 10"). A CA
    file, or a system CA file or directory, that changed since (path, size, inode or
    modification time) gets a new context. Callers must not change the context."""
    return _shared_context(settings, _trust_stamp(settings))


def _trust_stamp(settings: TLSSettings) -> tuple[object, ...]:
    """What the context of ``settings`` was loaded from, as it is now (see tls_context)."""
    if settings.fingerprint or not settings.verify:
        return ()
    if settings.ca_file:
        return (_file_stamp(str(settings.ca_file)),)
    import ssl

    paths = ssl.get_default_verify_paths()
    # What OpenSSL reads: SSL_CERT_FILE / SSL_CERT_DIR when set, else its defaults.
    return (
        _file_stamp(os.environ.get(paths.openssl_cafile_env) or paths.openssl_cafile),
        _file_stamp(os.environ.get(paths.openssl_capath_env) or paths.openssl_capath),
    )


def _file_stamp(path: str) -> tuple[str, int, int, int] | str:
    try:
        st = os.stat(path)
    except OSError:
        return path
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _shared_context(settings: TLSSettings, stamp: tuple[object, ...]) -> ssl.SSLContext:
    """A new context for ``settings``; ``stamp`` (:func:`_trust_stamp`) only keys the cache."""
    import ssl

    if settings.fingerprint or not settings.verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin, checked after the handshake, replaces it
    else:
        cafile = str(settings.ca_file) if settings.ca_file else None
        capath = None if cafile else system_ca_dir()
        with _map_errors("loading the CA file"):
            ctx = ssl.create_default_context(cafile=cafile, capath=capath)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


_HASH_LINK = re.compile(r"[0-9a-f]{8}\.[0-9]+")  # c_rehash's names: subject hash.n


def system_ca_dir() -> str | None:
    """The system's hashed CA directory, to be trusted alone instead of OpenSSL's
    default verify paths (its CA file *and* that directory) where it holds as many
    CAs as the file; else None, and the context loads those defaults. Trusting it
    never trusts more than the defaults would (it is one of them). Used for POP3
    and for the IMAP sink.

    Why: OpenSSL parses a CA file whole when it is loaded (the system bundle: ≈ 50 ms
    of CPU for 144 CAs, on every TLS start), but looks a hashed directory up lazily,
    reading only the CAs a chain names (≈ 0.5 ms). Only when neither ``SSL_CERT_FILE``
    nor ``SSL_CERT_DIR`` is set (an explicit choice is honoured as is) and the
    directory holds at least as many hash links as the file holds PEM blocks, as
    where one tool (update-ca-certificates) writes both; a bundle edited by hand
    without rehashing has more blocks, and keeps the old behaviour.
    """
    import ssl

    paths = ssl.get_default_verify_paths()
    if os.environ.get(paths.openssl_cafile_env) or os.environ.get(paths.openssl_capath_env):
        return None
    try:
        with os.scandir(paths.openssl_capath) as entries:
            links = sum(1 for entry in entries if _HASH_LINK.fullmatch(entry.name))
    except OSError:
        return None
    try:
        with open(paths.openssl_cafile, "rb") as bundle:
            blocks = bundle.read().count(b"-----BEGIN ")
    except FileNotFoundError:
        blocks = 0  # the defaults are the directory alone
    except OSError:
        return None
    return paths.openssl_capath if links and links >= blocks else None


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
    """A :class:`Stream` over one TCP connection, optionally TLS (see the module docstring).

    Made by :func:`open_tcp`, which puts its socket on the running loop."""

    def __init__(
        self, sock: socket.socket, read_timeout: float, progress: Progress | None = None
    ) -> None:
        self._sock = sock
        self._read_timeout = read_timeout
        self._progress = progress or Progress(PROGRESS_MIN_RATE, PROGRESS_WINDOW)
        self._buffer = _Chunks()  # plaintext received, not yet read
        self._eof = False
        self._closed = False
        self._error: BaseException | None = None
        self._tls: _TLS | None = None
        self._info: TLSInfo | None = None
        self._loop: OnLoop | None = None  #: the loop side carrying the socket (open_tcp)

    @classmethod
    async def on_loop(
        cls, sock: socket.socket, read_timeout: float, progress: Progress | None = None
    ) -> TCPStream:
        """A stream over the connected ``sock``, carried by the running loop (the socket
        is closed if that fails). Raises ConnectError."""
        from popkeep.transport.onloop import OnLoop

        stream = cls(sock, read_timeout, progress)
        try:
            with _map_errors("joining the event loop"):
                stream._loop = await OnLoop.adopt(stream, sock)
        except BaseException:
            sock.close()
            raise
        return stream

    @property
    def tls(self) -> TLSInfo | None:
        return self._info

    # -- bytes from the wire (both modes) ------------------------------------------------

    def received(self, raw: bytes) -> None:
        """Raw bytes (``b""``: end of stream) → the plaintext buffer."""
        tls = self._tls
        if tls is None:
            if raw:
                self._buffer.append(raw)
            else:
                self._eof = True
            return
        tls.feed(raw)
        if not tls.done:
            return  # the handshake loop reads them
        if tls.decrypt(self._buffer):
            self._eof = True
        reply = tls.outgoing()  # e.g. a key update answered while reading
        if reply:
            self._send_raw(reply)

    # -- the socket's I/O (overridden by transport.loopless) --------------------------------

    def _carrier(self) -> OnLoop:
        """The loop side carrying the socket; TransportError if there is none."""
        if self._loop is None:
            raise TransportError("connection is not on an event loop")
        return self._loop

    async def _join_loop(self) -> None:
        """Before any I/O: the stream is on the running loop already (open_tcp)."""

    def _send_raw(self, raw: bytes) -> None:
        """Queue ``raw`` for the wire without waiting."""
        self._carrier().write(raw)

    async def _send(self, raw: bytes) -> None:
        """Send ``raw``, waiting (up to the read timeout) while the peer is not reading."""
        carrier = self._carrier()
        carrier.write(raw)
        await carrier.drained(self._read_timeout)

    async def _fill(self, timeout: float) -> None:
        """Wait until there is plaintext or the end (TimeoutError after ``timeout`` s)."""
        await self._carrier().fill(self, timeout)

    def _consumed(self) -> None:
        """Plaintext was handed out: the carrier may read again."""
        if self._loop is not None:
            self._loop.consumed(len(self._buffer))

    async def _await_handshake_data(self, timeout: float) -> None:
        """Wait for the peer's next handshake bytes (fed to TLS by :meth:`received`)."""
        await self._carrier().handshake_data(timeout)
        if self._eof:  # connection lost: nothing more will come
            raise ConnectionResetError("the server closed the connection")

    async def _close_socket(self) -> None:
        if self._loop is not None:
            await self._loop.close()
        else:
            self._sock.close()

    # -- Stream ---------------------------------------------------------------------------

    async def read(self, max_bytes: int, timeout: float) -> bytes:
        """1..max_bytes bytes, ``b""`` at the end; NetworkTimeout after ``timeout`` s of
        silence, LimitExceeded when the reply breaks the progress rule (:class:`Progress`)."""
        waited = 0.0
        if not self._buffer and not self._eof:
            await self._join_loop()
            began = time.monotonic()
            with _map_errors("reading"):
                await self._fill(timeout)
            waited = time.monotonic() - began
        if self._buffer:
            data = self._buffer.take(max_bytes)
            self._consumed()
            self._progress.record(len(data), waited)
            return data
        error = self._error
        if error is not None:
            if not isinstance(error, OSError | TransportError):
                raise TransportError(f"connection lost: {error}") from error
            with _map_errors("reading"):  # a TLS error stays a TLSError
                raise error
        return b""

    async def write(self, data: bytes) -> None:
        if self._closed or self._error is not None:
            raise TransportError("connection is closed")
        await self._join_loop()
        self._progress.restart()
        raw = self._tls.encrypt(data) if self._tls is not None else data
        with _map_errors("writing"):
            await self._send(raw)
        if self._error is not None:
            raise TransportError(f"connection lost: {self._error}") from self._error

    async def start_tls(self, settings: TLSSettings) -> TLSInfo:
        await self._join_loop()  # first: bytes arriving while it awaits are dropped below
        if self._eof or self._closed or self._tls is not None:
            raise TransportError("connection closed before the TLS handshake")
        # From here to the handshake's first step nothing awaits: every byte received
        # before is dropped, every byte after goes to TLS.
        dropped = len(self._buffer)
        self._buffer.clear()  # plaintext sent before the handshake is never trusted
        if dropped:
            logger.warning("discarded %d bytes of plaintext received before TLS", dropped)
        return await self._handshake(settings)

    async def _handshake(self, settings: TLSSettings) -> TLSInfo:
        await self._join_loop()
        try:
            return await self._negotiate(settings)
        except TransportError as exc:
            text = self._tls.plaintext() if self._tls is not None else None
            if text is None or isinstance(exc, CertificateUntrusted):
                raise
            raise TLSMismatch(
                f"the server answered in plain text where a TLS handshake was expected: {text!r}"
            ) from exc

    async def _negotiate(self, settings: TLSSettings) -> TLSInfo:
        with _map_errors("negotiating TLS"):
            tls = self._tls = _TLS(settings)
            deadline = time.monotonic() + self._read_timeout
            while not tls.handshake():
                self._send_raw(tls.outgoing())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                await self._await_handshake_data(remaining)
            self._send_raw(tls.outgoing())
        self._info = tls_info(tls.obj, settings)
        if tls.decrypt(self._buffer):  # whatever arrived with the last handshake record
            self._eof = True
        return self._info

    async def close(self) -> None:
        """Close (with our close_notify under TLS); never raises."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self._tls is not None and self._tls.done and not self._eof:
                self._send_raw(self._tls.close())
        await self._close_socket()

    # -- called by the event-loop side ----------------------------------------------------

    def buffered(self) -> int:
        return len(self._buffer)

    def has_data(self) -> bool:
        return bool(self._buffer) or self._eof

    def lost(self, exc: BaseException | None) -> None:
        self._eof = True
        if self._error is None:
            self._error = exc


async def open_tcp(
    host: str,
    port: int,
    *,
    tls: TLSSettings | None,
    connect_timeout: float,
    read_timeout: float,
    progress: Progress | None = None,
) -> TCPStream:
    """Connect to ``host:port`` on the running loop; with ``tls``, handshake at once
    (implicit TLS, port 995).

    ``progress``: the progress rule, by default :data:`PROGRESS_MIN_RATE` octets/s
    over :data:`PROGRESS_WINDOW` seconds of waiting. Raises ConnectError,
    NetworkTimeout or TLSError (wrong certificate or pin).
    """
    from popkeep.transport.onloop import connect

    with _map_errors(f"connecting to {host}:{port}"):
        sock = await connect(host, port, connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
    stream = await TCPStream.on_loop(sock, read_timeout, progress)
    return await secure(stream, tls)


async def secure(stream: TCPStream, tls: TLSSettings | None) -> TCPStream:
    """``stream`` after its implicit-TLS handshake (none without ``tls``); closed if it fails."""
    if tls is not None:
        try:
            await stream._handshake(tls)
        except BaseException:
            await stream.close()
            raise
    return stream


async def open_stream(
    host: str, port: int, tls: TLSSettings | None, connect_timeout: float, read_timeout: float
) -> TCPStream:
    """:func:`open_tcp` with the positional signature of ``sources.pop3.StreamOpener``."""
    return await open_tcp(
        host, port, tls=tls, connect_timeout=connect_timeout, read_timeout=read_timeout
    )

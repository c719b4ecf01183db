"""POP3Session over real TCP and TLS on 127.0.0.1, against tests/pop3/miniserver.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import socket
import ssl
import subprocess
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli.quick.poll import drive
from popkeep.errors import (
    CertificateUntrusted,
    ConnectError,
    LimitExceeded,
    NetworkTimeout,
    SecurityError,
    TLSError,
    TransportError,
)
from popkeep.model import ServerStat
from popkeep.sources.pop3 import POP3Session, SessionSettings
from popkeep.spool import SpoolWriter
from popkeep.transport.base import TLSSettings
from popkeep.transport.loopless import LooplessStream, open_stream
from popkeep.transport.tcp import TCPStream, open_tcp, system_ca_dir, tls_context

from .miniserver import MiniServer


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    @property
    def fingerprint(self) -> str:
        der = ssl.PEM_cert_to_DER_cert(self.cert.read_text())
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_cert(directory: Path, name: str) -> Cert:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return Cert(cert, key)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Cert]:
    directory = tmp_path_factory.mktemp("certs")
    return make_cert(directory, "localhost"), make_cert(directory, "impostor")


def settings(port: int, **kw: Any) -> SessionSettings:
    base: dict[str, Any] = dict(host="127.0.0.1", port=port, tls="none",
                                tls_settings=TLSSettings("localhost"), user="u", password="s3cret",
                                response_timeout=5, connect_timeout=5)
    base.update(kw)
    return SessionSettings(**base)


Body = Callable[[MiniServer], Coroutine[Any, Any, Any]]
Runner = Callable[[MiniServer, Body], Any]


def with_server(server: MiniServer, body: Body) -> Any:
    """The server and the client on one event loop: the stream is on the loop throughout."""
    async def main() -> Any:
        async with server:
            return await body(server)
    return asyncio.run(main())


@contextlib.contextmanager
def server_thread(server: MiniServer) -> Iterator[MiniServer]:
    """The server on its own loop in a thread, so this thread can run without one."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        loop.run_until_complete(server.__aenter__())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.__aexit__(None, None, None))
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def without_loop(server: MiniServer, body: Body) -> Any:
    """The client driven without an event loop: the stream does blocking I/O throughout."""
    with server_thread(server):
        return drive(body(server))


@pytest.fixture(params=["loop", "blocking"])
def run_with(request: pytest.FixtureRequest) -> Runner:
    """Each test once with the stream on an event loop, once in blocking mode."""
    return with_server if request.param == "loop" else without_loop


def no_secret_sent(server: MiniServer) -> bool:
    return not any(c.startswith((b"PASS", b"USER", b"AUTH", b"APOP")) for c in server.received)


def test_plain_pipelined_session(tmp_path: Path, run_with: Runner) -> None:
    messages = [f"Subject: {i}\r\n\r\n.line {i}\r\n".encode() * (i % 7 + 1) for i in range(300)]
    messages.append(b"big\r\n" + b"y" * 77 + b"\r\n.\r\n" * 80_000)  # ~6 MB, spills to disk

    async def body(server: MiniServer) -> tuple[list[bytes], bool]:
        session = await POP3Session.connect(settings(server.port), open_stream,
                                            lambda: SpoolWriter(tmp_path))
        numbers = list((await session.uids(len(messages))).keys.values())
        assert numbers == list(range(1, len(messages) + 1))
        sizes = await session.sizes(numbers, len(numbers))  # many: one pipelined scan listing
        assert [sizes[n] for n in numbers] == [len(m) for m in messages]
        got = []
        async for number, message in session.retrieve(numbers):
            assert message.sha256 == hashlib.sha256(messages[number - 1]).hexdigest()
            got.append(b"".join(message.chunks()))
            message.close()
        await session.delete(numbers[:3])
        return got, await session.quit()

    server = MiniServer(messages=messages)
    got, quit_ok = run_with(server, body)
    assert got == messages and quit_ok
    assert server.received[-4:] == [b"DELE 1", b"DELE 2", b"DELE 3", b"QUIT"]


def tls_login(served: Cert, tls: TLSSettings) -> tuple[MiniServer, Body]:
    """A server presenting ``served`` over implicit TLS, and a body that logs in with
    ``tls`` and QUITs (returning whether QUIT was answered +OK)."""

    async def body(server: MiniServer) -> bool:
        session = await POP3Session.connect(settings(server.port, tls="implicit",
                                                     tls_settings=tls), open_stream)
        return await session.quit()

    return MiniServer(tls=served.server_context()), body


def test_implicit_tls_with_ca_file(certs: tuple[Cert, Cert], run_with: Runner) -> None:
    good, _ = certs

    async def body(server: MiniServer) -> str:
        tls = TLSSettings("localhost", ca_file=good.cert)
        session = await POP3Session.connect(settings(server.port, tls="implicit",
                                                     tls_settings=tls), open_stream)
        assert session.tls is not None and session.tls.version.startswith("TLS")
        assert "CN=localhost" in session.tls.subject
        fingerprint = session.tls.fingerprint_sha256
        assert await session.quit()
        return fingerprint

    fingerprint = run_with(MiniServer(tls=good.server_context()), body)
    assert "sha256:" + fingerprint == good.fingerprint


@pytest.mark.parametrize("pin_ok", [True, False])
def test_implicit_tls_pinned_self_signed(
    certs: tuple[Cert, Cert], pin_ok: bool, run_with: Runner
) -> None:
    good, other = certs
    pin = (good if pin_ok else other).fingerprint.upper().replace("SHA256:", "sha256:")
    server, body = tls_login(good, TLSSettings("localhost", fingerprint=pin))
    if pin_ok:
        assert run_with(server, body) is True
    else:
        with pytest.raises(TLSError, match="pin"):
            run_with(server, body)
        assert no_secret_sent(server)


def test_implicit_tls_wrong_certificate(certs: tuple[Cert, Cert], run_with: Runner) -> None:
    good, other = certs
    server, body = tls_login(good, TLSSettings("localhost", ca_file=other.cert))
    with pytest.raises(TLSError):
        run_with(server, body)
    assert server.received == []


@pytest.mark.parametrize("name", ["wrong.example", "wröng.example"])
def test_implicit_tls_checks_the_host_name(
    certs: tuple[Cert, Cert], name: str, run_with: Runner
) -> None:
    """A certificate the right CA signed for another name is refused, whether the
    name is ASCII (handed to ssl as bytes) or not (IDNA-encoded by ssl)."""
    good, _ = certs
    server, body = tls_login(good, TLSSettings(name, ca_file=good.cert))
    with pytest.raises(TLSError, match="mismatch"):
        run_with(server, body)
    assert server.received == []


def test_the_tls_context_is_shared_until_its_ca_file_changes(
    certs: tuple[Cert, Cert], tmp_path: Path
) -> None:
    """One context per settings and CA file (a service connects every minute); a CA
    file rewritten since is loaded again, and what it now says is what is trusted."""
    good, other = certs
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(good.cert.read_bytes())
    first = tls_context(TLSSettings("localhost", ca_file=ca_file))
    assert tls_context(TLSSettings("localhost", ca_file=ca_file)) is first
    pinned = TLSSettings("localhost", fingerprint=good.fingerprint)
    assert tls_context(pinned) is tls_context(pinned)

    ca_file.write_bytes(other.cert.read_bytes() + b"\n")
    assert tls_context(TLSSettings("localhost", ca_file=ca_file)) is not first
    server, body = tls_login(good, TLSSettings("localhost", ca_file=ca_file))
    with pytest.raises(TLSError, match="verify"):
        without_loop(server, body)
    assert server.received == []


def test_the_tls_context_is_made_again_when_ssl_cert_file_changes(
    certs: tuple[Cert, Cert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ca_file: what OpenSSL reads is SSL_CERT_FILE when set; rewriting it counts."""
    good, other = certs
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(good.cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    first = tls_context(TLSSettings("localhost"))
    assert tls_context(TLSSettings("localhost")) is first
    bundle.write_bytes(other.cert.read_bytes() + b"\n")
    assert tls_context(TLSSettings("localhost")) is not first


def _system_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hashed: list[Cert], bundle: list[Cert]
) -> Path:
    """Point OpenSSL's default verify paths (as ssl reports them) at a hashed directory
    of ``hashed`` and a CA file of ``bundle``; no SSL_CERT_* variables."""
    directory = tmp_path / "certs"
    directory.mkdir()
    for n, cert in enumerate(hashed):
        name = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(cert.cert)],
                              check=True, capture_output=True, text=True).stdout.strip()
        (directory / f"{name}.{n}").write_bytes(cert.cert.read_bytes())
    cafile = tmp_path / "bundle.pem"
    cafile.write_bytes(b"".join(c.cert.read_bytes() for c in bundle))
    paths = ssl.DefaultVerifyPaths(str(cafile), str(directory), "SSL_CERT_FILE", str(cafile),
                                   "SSL_CERT_DIR", str(directory))
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return directory


def test_system_ca_dir_only_where_it_holds_what_the_bundle_holds(
    certs: tuple[Cert, Cert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, other = certs
    directory = _system_paths(monkeypatch, tmp_path, [good, other], [good, other])
    assert system_ca_dir() == str(directory)
    (tmp_path / "bundle.pem").write_bytes(b"".join(c.cert.read_bytes() for c in certs) * 2)
    assert system_ca_dir() is None  # the bundle has CAs the directory may lack
    (tmp_path / "bundle.pem").unlink()
    assert system_ca_dir() == str(directory)  # no file: the defaults are the directory
    monkeypatch.setenv("SSL_CERT_FILE", str(good.cert))
    assert system_ca_dir() is None  # an explicit choice is loaded as OpenSSL would
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    assert system_ca_dir() is None
    monkeypatch.delenv("SSL_CERT_DIR")
    for link in directory.iterdir():
        link.unlink()
    assert system_ca_dir() is None


@pytest.mark.parametrize(("hashed", "trusted"), [("good", True), ("other", False)])
def test_without_ca_file_the_system_directory_verifies(
    certs: tuple[Cert, Cert], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    hashed: str, trusted: bool,
) -> None:
    """No ca_file: the hashed directory alone is trusted (the bundle, which holds the
    server's CA in both cases, is not loaded when the directory holds as many CAs)."""
    good, other = certs
    _system_paths(monkeypatch, tmp_path, [good if hashed == "good" else other], [good])
    server, body = tls_login(good, TLSSettings("localhost"))
    if trusted:
        assert without_loop(server, body) is True
    else:
        with pytest.raises(TLSError, match="verify"):
            without_loop(server, body)
        assert server.received == []


def test_starttls_discards_injected_plaintext(certs: tuple[Cert, Cert], run_with: Runner) -> None:
    good, _ = certs

    async def body(server: MiniServer) -> dict[str, list[str]]:
        tls = TLSSettings("localhost", ca_file=good.cert)
        session = await POP3Session.connect(settings(server.port, tls="starttls",
                                                     tls_settings=tls), open_stream)
        caps = session.capabilities
        assert session.tls is not None
        assert await session.stat() == ServerStat(0, 0)
        await session.quit()
        return caps

    server = MiniServer(stls=good.server_context(),
                        inject_after_stls=b"+OK\r\nINJECTED\r\n.\r\n")
    caps = run_with(server, body)
    assert "INJECTED" not in caps and "UIDL" in caps
    assert server.received[:3] == [b"CAPA", b"STLS", b"CAPA"]
    assert b"PASS s3cret" in server.received


def test_starttls_wrong_certificate_sends_no_password(
    certs: tuple[Cert, Cert], run_with: Runner
) -> None:
    good, other = certs

    async def body(server: MiniServer) -> None:
        tls = TLSSettings("localhost", ca_file=other.cert)
        await POP3Session.connect(settings(server.port, tls="starttls", tls_settings=tls),
                                  open_stream)

    server = MiniServer(stls=good.server_context())
    with pytest.raises(TLSError):
        run_with(server, body)
    assert server.received == [b"CAPA", b"STLS"]


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_certificate_reads_an_untrusted_certificate_and_sends_no_credential(
    certs: tuple[Cert, Cert], tls: str, run_with: Runner
) -> None:
    """What ``popkeep check`` shows after CertificateUntrusted: the served leaf's
    fingerprint, read without verification, with no USER/PASS/AUTH/APOP and no QUIT."""
    good, other = certs

    async def body(server: MiniServer) -> str:
        verified = settings(server.port, tls=tls, tls_settings=TLSSettings("localhost",
                                                                           ca_file=other.cert))
        with pytest.raises(CertificateUntrusted):
            await POP3Session.connect(verified, open_stream)
        info = await POP3Session.certificate(verified, open_stream)
        return info.fingerprint_sha256

    context = good.server_context()
    server = MiniServer(**({"tls": context} if tls == "implicit" else {"stls": context}))
    assert "sha256:" + run_with(server, body) == good.fingerprint
    assert no_secret_sent(server) and b"QUIT" not in server.received


def test_starttls_not_advertised_sends_no_password(run_with: Runner) -> None:
    async def body(server: MiniServer) -> None:
        await POP3Session.connect(settings(server.port, tls="starttls"), open_stream)

    server = MiniServer()
    with pytest.raises(SecurityError):
        run_with(server, body)
    assert server.received == [b"CAPA"]


def test_endless_line_is_cut_at_max_message_size(run_with: Runner) -> None:
    # The line itself is passed on in pieces (the codec holds at most max_line of it).
    async def body(server: MiniServer) -> bool:
        session = await POP3Session.connect(
            settings(server.port, max_message_size=1 << 20), open_stream)
        with pytest.raises(LimitExceeded, match="larger than"):
            async for _ in session.retrieve([1]):
                pass
        return await session.quit()

    assert run_with(MiniServer(messages=[b"x"], endless_line=True), body) is False


def test_response_timeout(run_with: Runner) -> None:
    async def body(server: MiniServer) -> None:
        session = await POP3Session.connect(settings(server.port, response_timeout=0.2),
                                            open_stream)
        try:
            await session.stat()
        finally:
            await session.close()

    with pytest.raises(NetworkTimeout):
        run_with(MiniServer(stall_on=b"STAT"), body)


def test_connect_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectError):
        asyncio.run(open_tcp("127.0.0.1", port, tls=None, connect_timeout=2, read_timeout=2))


def test_transport_start_tls_drops_buffered_plaintext(certs: tuple[Cert, Cert]) -> None:
    good, _ = certs

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK go\r\nINJECTED\r\n")  # one segment: the tail sits in our buffer
        await writer.drain()
        await writer.start_tls(good.server_context())
        writer.write(b"+OK secure\r\n")
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    async def main() -> tuple[bytes, bytes]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stream = await open_tcp("127.0.0.1", port, tls=None, connect_timeout=5, read_timeout=5)
        try:
            first = await stream.read(8, 5)
            await stream.start_tls(TLSSettings("localhost", ca_file=good.cert))
            after = await stream.read(1 << 16, 5)
        finally:
            await stream.close()
            server.close()
            await server.wait_closed()
        return first, after

    assert asyncio.run(main()) == (b"+OK go\r\n", b"+OK secure\r\n")


def test_a_closed_stream_is_freed_without_the_cycle_collector(certs: tuple[Cert, Cert]) -> None:
    """Its TLS state and buffers go with the last reference, not at the next full
    garbage collection (a service makes a connection per account every minute)."""
    good, _ = certs

    async def main() -> weakref.ref[TCPStream]:
        server = MiniServer(tls=good.server_context())
        async with server:
            tls = TLSSettings("localhost", ca_file=good.cert)
            stream = await open_tcp("127.0.0.1", server.port, tls=tls, connect_timeout=5,
                                    read_timeout=5)
            assert (await stream.read(100, 5)).startswith(b"+OK")
            await stream.close()
            return weakref.ref(stream)

    gc.disable()
    try:
        gc.collect()
        freed = asyncio.run(main())
        assert freed() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("tls", ["none", "implicit", "starttls"])
def test_session_moves_onto_the_loop(certs: tuple[Cert, Cert], tmp_path: Path, tls: str) -> None:
    """Logged in and listed without a loop (a poll's survey), fetched inside one: the
    same connection and TLS session, no second login."""
    good, _ = certs
    messages = [f"Subject: {i}\r\n\r\n.line {i}\r\n".encode() * (i % 5 + 1) for i in range(200)]
    messages.append(b"big\r\n" + b"y" * 77 + b"\r\n.\r\n" * 40_000)  # 3 MB: spills, flow control
    server = MiniServer(messages=messages,
                        tls=good.server_context() if tls == "implicit" else None,
                        stls=good.server_context() if tls == "starttls" else None)
    with server_thread(server):
        tls_settings = TLSSettings("localhost", ca_file=good.cert)
        session = drive(POP3Session.connect(settings(server.port, tls=tls,
                                                     tls_settings=tls_settings), open_stream,
                                             lambda: SpoolWriter(tmp_path)))
        numbers = list(drive(session.uids(1 << 30)).keys.values())
        assert session._stream._loop is None  # type: ignore[attr-defined]  # still blocking

        async def rest() -> tuple[list[bytes], bool]:
            got = []
            async for _, message in session.retrieve(numbers):
                got.append(b"".join(message.chunks()))
                message.close()
            assert session._stream._loop is not None  # type: ignore[attr-defined]
            return got, await session.quit()

        got, quit_ok = asyncio.run(rest())
    assert got == messages and quit_ok
    assert (session.tls is not None) == (tls != "none")
    assert sum(c.startswith(b"PASS") for c in server.received) == 1


def test_drive_refuses_a_coroutine_that_waits_for_a_loop() -> None:
    with pytest.raises(RuntimeError, match="event loop"):
        drive(asyncio.sleep(0))


def test_corrupt_tls_record_on_the_loop_is_a_tls_error(certs: tuple[Cert, Cert]) -> None:
    """A record that fails to decrypt ends the stream with a TLSError for the reader
    (raised inside the event loop's callback, it must not be lost there)."""
    good, _ = certs
    ours, theirs = socket.socketpair()

    def serve() -> None:  # TLS over memory buffers on the other end, then garbage
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = good.server_context().wrap_bio(incoming, outgoing, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                theirs.sendall(outgoing.read())
                incoming.write(theirs.recv(65536))
        tls.write(b"+OK hello\r\n")
        theirs.sendall(outgoing.read())
        theirs.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # application data, bad MAC

    async def main() -> bytes:
        stream = await TCPStream.on_loop(ours, 5)
        await stream._handshake(TLSSettings("localhost", ca_file=good.cert))
        got = b""
        try:
            while not got.endswith(b"\r\n"):
                got += await stream.read(1024, 5)
            with pytest.raises(TLSError):
                while await stream.read(1024, 5):
                    pass
        finally:
            await stream.close()
        return got

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        assert asyncio.run(main()) == b"+OK hello\r\n"
    finally:
        server.join(10)
        theirs.close()


def test_a_connection_lost_to_any_error_is_a_transport_error() -> None:
    """Whatever ended the stream (here something that is not an OSError, which the
    event-loop side may hand over), the reader gets a TransportError, never the raw
    exception: the collector only expects popkeep's errors."""
    ours, theirs = socket.socketpair()
    stream = LooplessStream(ours, 5)
    try:
        stream.lost(RuntimeError("callback failed"))
        with pytest.raises(TransportError, match="connection lost: callback failed"):
            drive(stream.read(1024, 5))
    finally:
        drive(stream.close())
        theirs.close()

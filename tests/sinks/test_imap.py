"""The IMAP sink against the real Dovecot: APPEND byte-for-byte, folders, TLS, auth, find()."""

from __future__ import annotations

import asyncio
import hashlib
import imaplib
import random
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from popkeep.clock import FakeClock
from popkeep.config.schema import Connection
from popkeep.config.secrets import SecretSource
from popkeep.config.sink_types import ImapSinkConfig, imap_sink
from popkeep.errors import AuthError, ConfigError, SecurityError, TLSError
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.imap import ImapSink, appenduid
from popkeep.spool import SpooledMessage

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def message(n: int, rng: random.Random) -> bytes:
    date = format_datetime(datetime(2025, 1 + n % 12, 1 + n % 28, n % 24, 7, 9, tzinfo=UTC))
    body_lines = [
        bytes(rng.randrange(32, 256) for _ in range(rng.randrange(0, 300))).replace(b"\x7f", b"~")
        for _ in range(rng.randrange(1, 40))
    ]
    body_lines.append(b".a line starting with a dot")
    head = (
        f"From: Sender {n} <s{n}@example.org>\r\nTo: bob@localhost\r\n"
        f"Subject: message {n}\r\nDate: {date}\r\nMessage-ID: <m{n}.{rng.random()}@example.org>\r\n"
        "Content-Type: text/plain; charset=latin-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    return head + b"\r\n".join(body_lines) + b"\r\n"


def make(data: bytes, account: str = "isp") -> Delivery:
    spooled = SpooledMessage.from_bytes(data)
    return Delivery(account, "uid", delivery_key(account, spooled.sha256), spooled)


def config(dovecot: Any, user: str, **kw: Any) -> ImapSinkConfig:
    """The sink's config; ``kw`` may set Connection fields (``password`` is its secret)."""
    server: dict[str, Any] = {
        "host": dovecot.host, "port": dovecot.imaps_port, "tls": "implicit",
        "ca_file": dovecot.ca_file, "user": user,
        "secret": kw.pop("password", SecretSource("literal", dovecot.password)),
    }
    server.update({key: kw.pop(key) for key in tuple(kw) if key in Connection._fields})
    return ImapSinkConfig(name="central", server=Connection(**server), **kw)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def deliver(sink: ImapSink, batch: list[Delivery]) -> list[str]:
    await sink.open()
    try:
        return [r.ref for r in await sink.deliver(batch)]
    finally:
        await sink.close()


@pytest.fixture
def reader(dovecot: Any, dovecot_user: str) -> Iterator[imaplib.IMAP4_SSL]:
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    client = imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=context)
    client.login(dovecot_user, dovecot.password)
    yield client
    client.logout()


def fetch_all(client: imaplib.IMAP4, folder: str) -> list[tuple[bytes, bytes]]:
    """(raw bytes, FETCH metadata line) of every message in ``folder``, in UID order."""
    typ, _ = client.select(f'"{folder}"', readonly=True)
    assert typ == "OK"
    typ, data = client.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    assert typ == "OK"
    return [(item[1], item[0]) for item in data if isinstance(item, tuple)]


@pytest.mark.dovecot
def test_300_messages_byte_for_byte_into_new_folder(dovecot, reader, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(4)
    batch = [make(message(n, rng)) for n in range(300)]
    cfg = config(dovecot, dovecot_user, folder="Archive/ISP", flags=("\\Seen",))
    sink = ImapSink(cfg, FakeClock(NOW))
    refs = run(deliver(sink, batch))
    assert len(refs) == 300
    assert [int(r.split(":")[1]) for r in refs] == list(range(1, 301))  # APPENDUID from UIDPLUS
    stored = fetch_all(reader, "Archive.ISP")  # Dovecot Maildir delimiter
    assert [data for data, _ in stored] == [d.message.read_all() for d in batch]
    assert all(b"\\Seen" in meta for _, meta in stored)
    # INTERNALDATE comes from each message's Date header.
    assert b'INTERNALDATE "01-Jan-2025 00:07:09 +0000"' in stored[0][1]


@pytest.mark.dovecot
def test_starttls_and_internaldate_fallback(dovecot, reader, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    undated = b"Subject: no date\r\n\r\nbody\r\n"
    cfg = config(dovecot, dovecot_user, tls="starttls", port=dovecot.imap_port)
    sink = ImapSink(cfg, FakeClock(NOW))
    run(deliver(sink, [make(undated)]))
    ((data, meta),) = fetch_all(reader, "INBOX")
    assert data == undated
    assert b'INTERNALDATE "01-Feb-2026 12:00:00 +0000"' in meta
    assert b"\\Seen" not in meta


@pytest.mark.dovecot
def test_find_after_crash_prevents_a_duplicate(dovecot, reader, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    first, other = make(message(1, rng)), make(message(2, rng))
    (ref,) = run(deliver(ImapSink(config(dovecot, dovecot_user)), [first]))
    # "Crash": the receipt was never committed. A new process re-fetches the
    # message (same bytes, same key) and asks the sink before delivering again.
    again = make(first.message.read_all())
    assert again.key == first.key

    async def recover(delivery: Delivery) -> tuple[Any, list[str]]:
        sink = ImapSink(config(dovecot, dovecot_user))
        try:
            found = await sink.find(delivery.key, delivery.message)
            refs = [] if found else [r.ref for r in await sink.deliver([delivery])]
            return found, refs
        finally:
            await sink.close()

    found, refs = run(recover(again))
    assert found is not None and found.ref == ref and refs == []
    found, refs = run(recover(other))
    assert found is None and len(refs) == 1
    assert len(fetch_all(reader, "INBOX")) == 2


@pytest.mark.dovecot
def test_find_checks_content_not_just_message_id(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    original = b"Message-ID: <same@x>\r\nSubject: a\r\n\r\nbody one\r\n"
    lookalike = b"Message-ID: <same@x>\r\nSubject: a\r\n\r\nbody two\r\n"  # same size
    run(deliver(ImapSink(config(dovecot, dovecot_user)), [make(original)]))
    probe = make(lookalike)

    async def look() -> Any:
        sink = ImapSink(config(dovecot, dovecot_user))
        try:
            return await sink.find(probe.key, probe.message)
        finally:
            await sink.close()

    assert run(look()) is None


@pytest.mark.dovecot
def test_trace_headers_find_by_key_alone(dovecot, reader, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    delivery = make(b"Subject: traced\r\n\r\nbody\r\n", account="work")
    sink_config = config(dovecot, dovecot_user, trace_headers=True)
    (ref,) = run(deliver(ImapSink(sink_config, FakeClock(NOW)), [delivery]))

    async def look(key: str) -> Any:
        sink = ImapSink(sink_config)
        try:
            return await sink.find(key)
        finally:
            await sink.close()

    found = run(look(delivery.key))
    assert found is not None and found.ref == ref
    assert run(look(make(b"Subject: other\r\n\r\n").key)) is None
    ((data, _),) = fetch_all(reader, "INBOX")
    assert data == (
        b"X-Popkeep-Account: work\r\nReceived: by popkeep (sink central) id "
        + delivery.key.encode() + b"; Sun, 01 Feb 2026 12:00:00 +0000\r\n"
        + delivery.message.read_all()
    )


@pytest.mark.dovecot
def test_wrong_ca_is_a_tls_error(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TLSError, match="certificate"):
        run(ImapSink(config(dovecot, dovecot_user, ca_file=dovecot.wrong_ca_file)).open())


def _leaf_pin(dovecot: Any) -> str:
    pem = (Path(dovecot.ca_file).parent / "server.pem").read_text()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.mark.dovecot
@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_pinned_certificate(dovecot, dovecot_user, tls: str) -> None:  # type: ignore[no-untyped-def]
    port = dovecot.imaps_port if tls == "implicit" else dovecot.imap_port
    pinned = config(dovecot, dovecot_user, tls=tls, port=port, ca_file=dovecot.wrong_ca_file,
                    tls_fingerprint=_leaf_pin(dovecot))
    sink = ImapSink(pinned)
    run(sink.open())  # the pin replaces CA verification (wrong_ca_file would refuse it)
    run(sink.close())
    wrong = pinned.server._replace(tls_fingerprint="0" * 64)
    with pytest.raises(TLSError, match="does not match the pin"):
        run(ImapSink(pinned._replace(server=wrong)).open())


@pytest.mark.dovecot
def test_wrong_password_is_an_auth_error(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    bad = config(dovecot, dovecot_user, password=SecretSource("literal", "wrong"))
    with pytest.raises(AuthError):
        run(ImapSink(bad).open())


@pytest.mark.dovecot
def test_missing_folder_not_created_when_told(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    from popkeep.errors import DeliveryRefused

    with pytest.raises(DeliveryRefused, match="does not exist"):
        run(ImapSink(config(dovecot, dovecot_user, folder="Nope", create_folder=False)).open())


@pytest.mark.dovecot
def test_starttls_required_when_configured(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    # Port of IMAPS speaks TLS at once; the plain port offers STARTTLS; a
    # plain-text server that does not offer it must be refused, not used.
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"* OK IMAP4rev1 hi\r\n")
            file = conn.makefile("rb")
            while line := file.readline():
                tag = line.split()[0]
                if b"LOGOUT" in line.upper():
                    conn.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    break
                conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
            file.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    cfg = config(dovecot, dovecot_user, tls="starttls", host="127.0.0.1", port=port)
    with pytest.raises(SecurityError, match="STARTTLS"):
        run(ImapSink(cfg).open())
    thread.join(5)
    server.close()


def test_appenduid_parsing() -> None:
    assert appenduid(b"[APPENDUID 38505 3955] APPEND completed") == (38505, 3955)
    assert appenduid("Append completed.") is None


def test_config_converter() -> None:
    got = imap_sink(
        {"type": "imap", "name": "g", "host": "imap.gmail.com", "user": "me@gmail.com",
         "auth": "xoauth2", "oauth_token_command": "oauth2l fetch --scope mail"},
        "c: sink \"g\"",
    )
    assert got.server.port == 993 and got.server.tls == "implicit"
    assert got.server.secret is not None
    assert got.server.secret.argv == ("oauth2l", "fetch", "--scope", "mail")
    assert imap_sink({"name": "s", "host": "h", "user": "u", "tls": "starttls",
                      "password_env": "P"}, "c").server.port == 143
    with pytest.raises(ConfigError, match='c: sink "g": expected one of password_command, '):
        imap_sink({"name": "g", "host": "h", "user": "u"}, 'c: sink "g"')
    with pytest.raises(ConfigError, match=r"c\.tls: expected one of"):
        imap_sink({"name": "g", "host": "h", "user": "u", "tls": "ssl", "password": "p"}, "c")
    with pytest.raises(ConfigError, match="got password and password_env"):
        imap_sink({"name": "g", "host": "h", "user": "u", "password": "p",
                   "password_env": "X"}, "c")


def test_loader_builds_every_central_sink_type(tmp_path: Path) -> None:
    import tomllib

    from popkeep.config.load import parse_config
    from popkeep.config.sink_types import (
        GmailSinkConfig,
        LmtpSinkConfig,
        MboxSinkConfig,
        MdaSinkConfig,
    )

    text = f"""
[state]
path = "{tmp_path}/state.db"
[[sink]]
name = "central"
type = "imap"
host = "imap.gmail.com"
user = "me@gmail.com"
password_command = "pass show gmail"
folder = "ISP/Inbox"
[[sink]]
name = "api"
type = "gmail"
oauth_token_command = ["gcloud", "auth", "print-access-token"]
labels = ["INBOX", "ISP"]
[[sink]]
name = "lmtp"
type = "lmtp"
socket = "/run/dovecot/lmtp"
recipients = ["me"]
[[sink]]
name = "lda"
type = "mda"
command = ["dovecot-lda", "-d", "me"]
[[sink]]
name = "box"
type = "mbox"
path = "{tmp_path}/mbox"
"""
    config = parse_config(tomllib.loads(text), "popkeep.toml", env={})
    central = config.sinks["central"]
    assert isinstance(central, ImapSinkConfig) and central.folder == "ISP/Inbox"
    assert central.server.secret is not None
    assert central.server.secret.argv == ("pass", "show", "gmail")
    assert isinstance(config.sinks["api"], GmailSinkConfig)
    assert isinstance(config.sinks["lmtp"], LmtpSinkConfig)
    assert isinstance(config.sinks["lda"], MdaSinkConfig)
    assert isinstance(config.sinks["box"], MboxSinkConfig)
    bad = text.replace('folder = "ISP/Inbox"', 'folder = "ISP/Inbox"\nfolders = 1')
    with pytest.raises(ConfigError, match=r'sink "central".folders: unknown key'):
        parse_config(tomllib.loads(bad), "popkeep.toml", env={})

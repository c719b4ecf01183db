"""OAuth 2.0 against a real server: the test Dovecot with its oauth2 passdb, which
asks a local token introspection endpoint (RFC 7662) about each access token.

popkeep signs in with the device flow at the fake authorization server, then
fetches over POP3 (STLS, XOAUTH2) and delivers over IMAP (STARTTLS, XOAUTH2) into
the same Dovecot; a token Dovecot no longer accepts gets Dovecot's own error
challenge, answered, and one AuthError line."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from popkeep.cli import main
from popkeep.config import load_config
from popkeep.config.sink_types import imap_sink
from popkeep.errors import AuthError
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.imap import ImapSink
from popkeep.spool import SpooledMessage
from popkeep.testing.certs import TestCerts

from ..fixtures.dovecot import INSTALL_HINT, Dovecot, find_binary
from ..fixtures.http import serving
from .fake_authority import Authority, serve

pytestmark = pytest.mark.dovecot

USER = "alice"


class Introspection:
    """POST /introspect ``token=…`` → ``{"active": …, "username": "alice"}``: active
    for the access tokens the current authority issued and not :attr:`refused`."""

    def __init__(self) -> None:
        self.authority: Authority | None = None
        self.refused: set[str] = set()
        self.asked: list[str] = []
        self.valid: set[str] = set()  #: more active tokens (not from the authority)

    def active(self, token: str) -> bool:
        issued = self.authority.issued if self.authority else 0
        known = {f"at-{n}" for n in range(1, issued + 1)} | self.valid
        return token in known - self.refused


@pytest.fixture(scope="module")
def introspection() -> Iterator[tuple[Introspection, str]]:
    state = Introspection()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            token = parse_qs(self.rfile.read(length).decode()).get("token", [""])[0]
            state.asked.append(token)
            body = json.dumps({"active": state.active(token), "username": USER}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as base:
        yield state, f"{base}/introspect"


@pytest.fixture(scope="module")
def oauth_dovecot(introspection: tuple[Introspection, str]) -> Iterator[Dovecot]:
    if find_binary() is None:  # as the session's dovecot fixture does (tests/conftest.py)
        message = f"Dovecot is not installed: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = Dovecot.start(users=(USER,), oauth2_introspection=introspection[1])
    yield server
    server.stop()


@pytest.fixture
def authority(certs: TestCerts, monkeypatch: pytest.MonkeyPatch,
              introspection: tuple[Introspection, str]) -> Iterator[Authority]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    with serve(certs.server_context()) as state:
        introspection[0].authority = state
        yield state


def write(tmp_path: Path, dovecot: Dovecot, authority: Authority) -> Path:
    oauth = f'{{ provider = "microsoft", client_id = "client-1", authority = "{authority.base}" }}'
    config = tmp_path / "config.toml"
    config.write_text(f"""
[state]
path = "{tmp_path / 'state.db'}"

[[sink]]
name = "central"
type = "imap"
host = "127.0.0.1"
port = {dovecot.imap_port}
tls = "starttls"
ca_file = "{dovecot.ca_file}"
user = "{USER}"
auth = "oauth2"
oauth = {oauth}
folder = "Collected"

[[account]]
name = "isp"
host = "127.0.0.1"
port = {dovecot.pop3_port}
tls = "starttls"
ca_file = "{dovecot.ca_file}"
user = "{USER}"
auth = "oauth2"
oauth = {oauth}
""")
    config.chmod(0o600)
    return config


def test_sign_in_fetch_and_deliver_with_xoauth2_then_a_refused_token(
    tmp_path: Path, oauth_dovecot: Dovecot, authority: Authority,
    introspection: tuple[Introspection, str], capsys: pytest.CaptureFixture[str],
) -> None:
    config = write(tmp_path, oauth_dovecot, authority)
    assert main(["-c", str(config), "auth", "isp", "--device"]) == 0
    assert main(["-c", str(config), "auth", "central", "--device"]) == 0
    capsys.readouterr()
    oauth_dovecot.add_messages(USER, [b"Subject: one\r\n\r\nbody 1\r\n",
                                      b"Subject: two\r\n\r\nbody 2\r\n"])
    # The sink's token (at-2) was revoked before it expired: the sink gets a fresh one.
    introspection[0].refused.add("at-2")
    assert main(["-c", str(config), "fetch"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("isp: 2 new")
    log = oauth_dovecot.log_text()
    assert "pop3-login: Info: Login: user=<alice>, method=XOAUTH2" in log
    assert "imap-login: Info: Login: user=<alice>, method=XOAUTH2" in log
    collected = oauth_dovecot.maildir(USER).parent / "Maildir" / ".Collected"
    stored = [p.read_bytes() for d in ("new", "cur") for p in (collected / d).iterdir()]
    assert sorted(stored) == [b"Subject: one\n\nbody 1\n", b"Subject: two\n\nbody 2\n"]
    assert introspection[0].asked == ["at-1", "at-2", "at-3"]

    # The account's sign-in is revoked: its token is refused by Dovecot, and the
    # refresh token by the authority: one line naming the command.
    introspection[0].refused.add("at-1")
    authority.revoked.add("rt-1")
    oauth_dovecot.add_messages(USER, [b"Subject: three\r\n\r\nbody 3\r\n"])
    assert main(["-c", str(config), "fetch"]) == 77
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('isp: FAILED: account "isp": Microsoft refused to renew the '
                             "sign-in: invalid_grant")
    assert err[0].endswith("; run: popkeep auth isp")
    assert introspection[0].asked.count("at-1") == 2  # Dovecot refused it first


@pytest.mark.parametrize("mechanism", ["oauthbearer", "xoauth2"])
def test_imap_sink_with_a_token_command_and_either_mechanism(
    oauth_dovecot: Dovecot, introspection: tuple[Introspection, str], mechanism: str,
) -> None:
    """RFC 7628 OAUTHBEARER (and XOAUTH2) as IMAPClient sends them, accepted by a real
    server; a refused token is an AuthError after Dovecot's error challenge."""
    introspection[0].valid.add(f"tok-{mechanism}")
    table = {"name": "central", "type": "imap", "host": "127.0.0.1",
             "port": oauth_dovecot.imaps_port, "ca_file": str(oauth_dovecot.ca_file),
             "user": USER, "auth": mechanism, "folder": f"By-{mechanism}",
             "oauth_token_command": f"printf tok-{mechanism}"}
    sink = ImapSink(imap_sink(table, 'c: sink "central"'))
    message = SpooledMessage.from_bytes(b"Subject: s\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n")
    delivery = Delivery("isp", "u1", delivery_key("isp", message.sha256), message)

    async def deliver() -> None:
        try:
            await sink.deliver([delivery])
        finally:
            await sink.close()

    asyncio.run(deliver())
    assert f"method={mechanism.upper()}" in oauth_dovecot.log_text()
    introspection[0].refused.add(f"tok-{mechanism}")
    with pytest.raises(AuthError, match="login refused"):
        asyncio.run(ImapSink(imap_sink(table, 'c: sink "central"')).open())


def test_imap_sink_whose_fresh_token_is_refused_too_says_what_to_check(
    tmp_path: Path, oauth_dovecot: Dovecot, authority: Authority,
    introspection: tuple[Introspection, str], capsys: pytest.CaptureFixture[str],
) -> None:
    """The sink's cached token is refused, so is the one renewed once: the AuthError
    names what to check and the command to sign in again, as an account's does."""
    config = write(tmp_path, oauth_dovecot, authority)
    assert main(["-c", str(config), "auth", "central", "--device"]) == 0
    capsys.readouterr()
    refused = set(introspection[0].refused)
    introspection[0].refused |= {"at-1", "at-2"}
    try:
        with pytest.raises(AuthError) as caught:
            asyncio.run(ImapSink(load_config(config).sinks["central"]).open())
    finally:
        introspection[0].refused = refused
    assert introspection[0].asked[-2:] == ["at-1", "at-2"]
    assert caught.value.hint == ("a fresh access token was refused too: check that the "
                                 "mailbox allows IMAP, or sign in again: popkeep auth central")

"""The private Dovecot fixture, checked with the standard library's clients over real sockets."""

from __future__ import annotations

import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..fixtures.dovecot import Dovecot, DovecotError

pytestmark = pytest.mark.dovecot

MESSAGE = (
    b"From: a@example.org\r\n"
    b"To: b@example.org\r\n"
    b"Subject: round trip\r\n"
    b"\r\n"
    b"first line\r\n"
    b".a line that POP3 must dot-stuff\r\n"
    b"\r\n"
    b"last line\r\n"
)


def tls_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


@contextmanager
def pop3(dovecot: Dovecot, user: str) -> Iterator[poplib.POP3]:
    """A logged-in plaintext POP3 session; QUIT on leaving unless the test closed it."""
    client = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        client.user(user)
        client.pass_(dovecot.password)
        yield client
    finally:
        if client.sock is not None:
            client.quit()


def retr(client: poplib.POP3, which: int) -> bytes:
    """RETR as the wire carried it, minus dot-stuffing (poplib undoes it and strips CRLF)."""
    _, lines, _ = client.retr(which)
    return b"".join(line + b"\r\n" for line in lines)


def test_pop3_plaintext_login_and_stat(dovecot: Dovecot, dovecot_user: str) -> None:
    dovecot.add_messages(dovecot_user, [MESSAGE, MESSAGE])
    with pop3(dovecot, dovecot_user) as client:
        assert client.stat() == (2, 2 * len(MESSAGE))


def test_pop3_stls_verifies_with_fixture_ca(dovecot: Dovecot, dovecot_user: str) -> None:
    client = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        assert "STLS" in client.capa()
        client.stls(context=tls_context(dovecot.ca_file))
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in {"TLSv1.2", "TLSv1.3"}
        client.user(dovecot_user)
        assert client.pass_(dovecot.password).startswith(b"+OK")
    finally:
        client.quit()


def test_pop3s_implicit_tls(dovecot: Dovecot, dovecot_user: str) -> None:
    client = poplib.POP3_SSL(
        dovecot.host, dovecot.pop3s_port, timeout=10, context=tls_context(dovecot.ca_file)
    )
    try:
        client.user(dovecot_user)
        client.pass_(dovecot.password)
        assert client.stat() == (0, 0)
    finally:
        client.quit()


@pytest.mark.parametrize("port_name", ["pop3s_port", "imaps_port"])
def test_wrong_ca_fails_verification(dovecot: Dovecot, port_name: str) -> None:
    context = tls_context(dovecot.wrong_ca_file)
    with (
        socket.create_connection((dovecot.host, getattr(dovecot, port_name)), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")


def test_certificate_names_localhost_and_loopback_ip(dovecot: Dovecot) -> None:
    context = tls_context(dovecot.ca_file)
    for server_hostname in ("localhost", "127.0.0.1"):
        with (
            socket.create_connection((dovecot.host, dovecot.pop3s_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            assert tls.getpeercert() is not None
    with (
        socket.create_connection((dovecot.host, dovecot.pop3s_port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="mail.example.org")


def test_message_bytes_round_trip(dovecot: Dovecot, dovecot_user: str) -> None:
    lf_message = b"Subject: lf\n\nbody with LF only\n.\n..two dots\n"
    dovecot.add_messages(dovecot_user, [MESSAGE, lf_message])
    assert dovecot.messages(dovecot_user) == [MESSAGE.replace(b"\r\n", b"\n"), lf_message]
    with pop3(dovecot, dovecot_user) as client:
        assert retr(client, 1) == MESSAGE
        assert retr(client, 2) == lf_message.replace(b"\n", b"\r\n")
        # LIST sizes are the CRLF sizes (RFC 1939 §5), taken from the W= in the file name.
        _, listing, _ = client.list()
        crlf_size = len(lf_message.replace(b"\n", b"\r\n"))
        assert listing == [b"1 %d" % len(MESSAGE), b"2 %d" % crlf_size]
        _, uidls, _ = client.uidl()
    uids = [line.split()[1] for line in uidls]
    assert [len(uid) for uid in uids] == [16, 16]  # %08Xu%08Xv
    assert uids[0] != uids[1]


def test_dele_takes_effect_only_after_quit(dovecot: Dovecot, dovecot_user: str) -> None:
    dovecot.add_messages(dovecot_user, [b"Subject: 1\n\none\n", b"Subject: 2\n\ntwo\n"])
    dropped = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    dropped.user(dovecot_user)
    dropped.pass_(dovecot.password)
    dropped.dele(1)
    dropped.close()  # no QUIT: RFC 1939 §6, nothing is deleted
    with pop3(dovecot, dovecot_user) as client:
        assert client.stat()[0] == 2
        client.dele(1)
    assert dovecot.messages(dovecot_user) == [b"Subject: 2\n\ntwo\n"]


def test_imaps_login_sees_the_messages(dovecot: Dovecot, dovecot_user: str) -> None:
    dovecot.add_messages(dovecot_user, [MESSAGE] * 3)
    with imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=tls_context(dovecot.ca_file), timeout=10
    ) as client:
        client.login(dovecot_user, dovecot.password)
        status, data = client.select("INBOX", readonly=True)
        assert status == "OK"
        assert data == [b"3"]
        _, fetched = client.fetch("1", "(BODY.PEEK[])")
        first = fetched[0]
        assert isinstance(first, tuple)
        assert first[1] == MESSAGE
        client.logout()


def test_lmtp_delivery_lands_in_the_maildir(dovecot: Dovecot, dovecot_user: str) -> None:
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=10) as client:
        refused = client.sendmail("sender@example.org", [f"{dovecot_user}@localhost"], MESSAGE)
    assert refused == {}
    stored = dovecot.messages(dovecot_user)
    assert len(stored) == 1
    assert stored[0].endswith(MESSAGE.replace(b"\r\n", b"\n"))  # after Return-Path etc.


def test_auth_attempts_counts_every_outcome(dovecot: Dovecot, dovecot_user: str) -> None:
    assert dovecot.auth_attempts(dovecot_user) == 0
    with pop3(dovecot, dovecot_user):
        pass
    assert dovecot.auth_attempts(dovecot_user) == 1
    client = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        client.user(dovecot_user)
        with pytest.raises(poplib.error_proto, match="-ERR"):
            client.pass_("wrong password")
    finally:
        client.quit()
    assert dovecot.auth_attempts(dovecot_user) == 2


def test_user_alone_is_not_an_auth_attempt(dovecot: Dovecot, dovecot_user: str) -> None:
    client = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)
    try:
        client.user(dovecot_user)
    finally:
        client.quit()
    assert dovecot.auth_attempts(dovecot_user) == 0


def test_clear_empties_and_restarts_uids(dovecot: Dovecot, dovecot_user: str) -> None:
    dovecot.add_messages(dovecot_user, [b"Subject: a\n\na\n", b"Subject: b\n\nb\n"])
    with pop3(dovecot, dovecot_user) as client:
        client.dele(1)
    dovecot.clear(dovecot_user)
    assert dovecot.message_count(dovecot_user) == 0
    dovecot.add_messages(dovecot_user, [b"Subject: c\n\nc\n"])
    with pop3(dovecot, dovecot_user) as client:
        _, uidls, _ = client.uidl()
    assert len(uidls) == 1
    assert uidls[0].split()[1].startswith(b"00000001")


def test_fresh_users_do_not_share_mailboxes(dovecot: Dovecot, dovecot_user: str) -> None:
    dovecot.add_messages(dovecot_user, [MESSAGE])
    other = dovecot_user + "-other"
    dovecot.add_user(other)
    assert dovecot.message_count(dovecot_user) == 1
    assert dovecot.message_count(other) == 0
    with pop3(dovecot, other) as client:
        assert client.stat() == (0, 0)


def test_second_instance_starts_fast_and_stops_cleanly(dovecot: Dovecot) -> None:
    began = time.monotonic()
    second = Dovecot.start(users=["carol"], password="pw")
    try:
        assert time.monotonic() - began < 2.0
        assert second.pop3_port != dovecot.pop3_port
        with pop3(second, "carol") as client:
            assert client.stat() == (0, 0)
        assert "Fatal" not in second.log_text()
    finally:
        second.stop()
    assert not second.base_dir.exists()  # start() made it, stop() removed it
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((second.host, second.pop3_port), timeout=10).close()


@pytest.mark.skipif(os.getuid() != 0, reason="only root runs mail processes as another user")
def test_unreachable_base_dir_is_refused_with_a_reason(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    with pytest.raises(DovecotError, match="not searchable by others"):
        Dovecot.start(hidden / "dovecot")

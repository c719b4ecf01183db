"""The scripted POP3 server, driven by the stdlib poplib and raw sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import poplib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import big_message, demo_mailbox
from popkeep.testing.misbehaviour import IN_USE, LOGIN_DELAY, WEIRD_UIDLS, Misbehaviour
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def demo() -> list[bytes]:
    return demo_mailbox(0)


def _small_box() -> Mailbox:
    return Mailbox.from_messages([b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(1, 5)])


@contextmanager
def serving(mailbox: Mailbox | None = None, **kwargs: object) -> Iterator[ScriptedPOP3Server]:
    server = ScriptedPOP3Server(mailbox if mailbox is not None else _small_box(),
                                password=PASSWORD, **kwargs)  # type: ignore[arg-type]
    with ServerThread(server):
        yield server


def _login(port: int) -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=5)
    client.user("demo")
    client.pass_(PASSWORD)
    return client


def _read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(data[-200:])
        data += chunk
        assert len(data) < limit
    return data


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@contextmanager
def raw(port: int) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        yield sock


def _raw_login(sock: socket.socket) -> None:
    _read_until(sock, b"\r\n")
    sock.sendall(b"USER demo\r\nPASS " + PASSWORD.encode() + b"\r\n")
    assert b"+OK" in _read_until(sock, b"messages\r\n")


# ------------------------------------------------------------------ happy paths


def test_round_trip_of_demo_mailbox(demo: list[bytes]) -> None:
    box = Mailbox.from_messages(demo)
    with serving(box) as server:
        client = _login(server.port)
        assert client.stat() == (len(demo), sum(map(len, demo)))
        uids = [line.split()[1].decode() for line in client.uidl()[1]]
        sizes = [int(line.split()[1]) for line in client.list()[1]]
        assert uids == box.uids
        assert sizes == [len(m) for m in demo]
        for number, message in enumerate(demo, 1):
            _, lines, _ = client.retr(number)
            assert b"\r\n".join(lines) + b"\r\n" == message, f"message {number}"
        client.quit()
    assert server.sessions[0].retrieved == box.uids and server.sessions[0].quit


def test_top_returns_headers_and_n_body_lines(demo: list[bytes]) -> None:
    with serving(Mailbox.from_messages(demo)) as server:
        client = _login(server.port)
        dotted = next(i for i, m in enumerate(demo, 1) if b"\r\n.\r\n" in m)
        _, lines, _ = client.top(dotted, 2)
        assert lines[-3:] == [b"", b".this line starts with a dot", b"..and this one with two"]
        client.quit()


def test_dele_then_quit_applies_deletions() -> None:
    box = _small_box()
    first, third = box.uids[0], box.uids[2]
    with serving(box) as server:
        client = _login(server.port)
        client.dele(1)
        client.dele(3)
        assert client.stat()[0] == 2
        assert len(box) == 4, "nothing is deleted before QUIT"
        client.quit()
        assert server.wait_for_sessions(1)
        again = _login(server.port)
        assert again.stat()[0] == 2
        again.quit()
    assert first not in box and third not in box and len(box) == 2
    assert server.sessions[0].deleted == [first, third]
    assert box.deleted == [first, third]


def test_dropped_connection_deletes_nothing() -> None:
    box = _small_box()
    with serving(box) as server:
        client = _login(server.port)
        client.dele(1)
        client.close()  # no QUIT: RFC 1939 §6, no UPDATE state
        assert server.wait_for_sessions(1)
    assert len(box) == 4 and box.deleted == []


def test_rset_unmarks_deletions() -> None:
    box = _small_box()
    with serving(box) as server:
        client = _login(server.port)
        client.dele(2)
        client.rset()
        client.quit()
    assert len(box) == 4


def test_new_mail_and_foreign_deletion_between_sessions() -> None:
    box = _small_box()
    with serving(box) as server:
        gone = box.uids[0]
        assert box.remove(gone)
        new_uid = box.add(b"Subject: new\r\n\r\nhello\r\n")
        client = _login(server.port)
        uids = [line.split()[1].decode() for line in client.uidl()[1]]
        client.quit()
    assert gone not in uids and uids[-1] == new_uid and len(uids) == 4


def test_wrong_password_is_refused_with_auth_code() -> None:
    with serving() as server:
        client = poplib.POP3("127.0.0.1", server.port, timeout=5)
        client.user("demo")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.pass_("wrong")
        client.quit()


def test_apop_logs_in_without_sending_the_password() -> None:
    with serving() as server:
        client = poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert b"@pop.example.com>" in client.getwelcome()
        client.apop("demo", PASSWORD)
        assert client.stat()[0] == 4
        client.quit()
    assert server.sessions[0].user == "demo"
    assert not server.received_password(PASSWORD)


@pytest.mark.parametrize("continuation", [False, True])
def test_auth_plain(continuation: bool) -> None:
    token = base64.b64encode(b"\0demo\0" + PASSWORD.encode())
    with serving() as server, raw(server.port) as sock:
        _read_until(sock, b"\r\n")
        if continuation:
            sock.sendall(b"AUTH PLAIN\r\n")
            assert _read_until(sock, b"\r\n") == b"+ \r\n"
            sock.sendall(token + b"\r\n")
        else:
            sock.sendall(b"AUTH PLAIN " + token + b"\r\n")
        assert _read_until(sock, b"\r\n").startswith(b"+OK")
        sock.sendall(b"QUIT\r\n")
        _read_all(sock)
    assert server.sessions[0].user == "demo"
    assert server.received_password(PASSWORD), "base64 PLAIN carries the password"


def test_stls_upgrades_and_password_travels_only_inside_tls(certs: TestCerts) -> None:
    with serving(tls_context=certs.server_context()) as server:
        client = poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert "STLS" in client.capa()
        client.stls(certs.client_context())
        assert "STLS" not in client.capa()
        client.user("demo")
        client.pass_(PASSWORD)
        assert client.stat()[0] == 4
        client.quit()
    session = server.sessions[0]
    assert session.tls and b"STLS" in session.plaintext_lines
    assert server.received_password(PASSWORD)
    assert not server.received_password(PASSWORD, plaintext_only=True)


def test_plaintext_password_is_detected() -> None:
    with serving() as server:
        _login(server.port).quit()
    assert server.received_password(PASSWORD, plaintext_only=True)


def test_implicit_tls(certs: TestCerts) -> None:
    with serving(tls_context=certs.server_context(), implicit_tls=True) as server:
        client = poplib.POP3_SSL("localhost", server.port, context=certs.client_context(),
                                 timeout=5)
        assert "STLS" not in client.capa()
        client.user("demo")
        client.pass_(PASSWORD)
        client.quit()
    assert not server.received_password(PASSWORD, plaintext_only=True)
    assert len(certs.fingerprint) == 64


def test_stls_not_offered_without_stls(certs: TestCerts) -> None:
    with serving(tls_context=certs.server_context(), stls=False) as server:
        client = poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert "STLS" not in client.capa()
        with pytest.raises(poplib.error_proto, match="STLS"):
            client._shortcmd("STLS")
        client.quit()


def test_pipelined_commands_are_answered_in_order() -> None:
    box = _small_box()
    with serving(box) as server, raw(server.port) as sock:
        _raw_login(sock)
        batch = b"".join(b"RETR %d\r\nNOOP\r\n" % n for n in range(1, 5)) + b"STAT\r\nQUIT\r\n"
        sock.sendall(batch)
        data = _read_all(sock)
    expected = b"".join(
        b"+OK %d octets\r\n" % len(box.message(uid)) + box.message(uid) + b".\r\n+OK\r\n"
        for uid in box.uids)
    assert data == expected + b"+OK 4 %d\r\n+OK bye\r\n" % sum(
        len(box.message(u)) for u in box.uids)


def test_streamed_big_message_is_served_intact() -> None:
    box = Mailbox()
    size = 3 * 1024 * 1024
    box.add_stream(lambda: big_message(size, seed=9), size, "big-1")
    with serving(box) as server:
        client = _login(server.port)
        assert client.list(1).split()[-1] == str(size).encode()
        _, lines, _ = client.retr(1)
        client.quit()
    assert b"\r\n".join(lines) + b"\r\n" == b"".join(big_message(size, seed=9))


def test_async_context_manager_serves() -> None:
    async def scenario() -> bytes:
        async with ScriptedPOP3Server(_small_box(), password=PASSWORD) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            greeting = await reader.readline()
            writer.write(b"QUIT\r\n")
            bye = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return greeting + bye

    assert asyncio.run(scenario()).endswith(b"+OK bye\r\n")


def test_only_loopback_is_allowed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        ScriptedPOP3Server(Mailbox(), host="0.0.0.0")


def test_maildir_loading(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "1.a").write_bytes(b"Subject: a\n\nfirst\n")
    (tmp_path / "cur" / "2.b:2,S").write_bytes(b"Subject: b\n\nsecond\n")
    (tmp_path / "tmp" / "3.c").write_bytes(b"Subject: c\n\nignored\n")
    box = Mailbox.from_maildir(tmp_path)
    assert [box.message(u) for u in box.uids] == [b"Subject: a\r\n\r\nfirst\r\n",
                                                  b"Subject: b\r\n\r\nsecond\r\n"]


# ------------------------------------------------------------------ misbehaviour


def test_drop_in_retr_sends_k_octets_then_closes() -> None:
    box = _small_box()
    with serving(box, misbehave=Misbehaviour(drop_in_retr=(2, 7))) as server, \
            raw(server.port) as sock:
        _raw_login(sock)
        sock.sendall(b"DELE 1\r\nRETR 2\r\n")
        data = _read_all(sock)
        assert server.wait_for_sessions(1)
    status = b"+OK %d octets\r\n" % len(box.message(box.uids[1]))
    assert data == b"+OK message 1 deleted\r\n" + status + box.message(box.uids[1])[:7]
    assert len(box) == 4


def test_drop_before_quit_reply_applies_no_deletion() -> None:
    box = _small_box()
    with serving(box, misbehave=Misbehaviour(drop_before_quit_reply=True)) as server:
        client = _login(server.port)
        client.dele(1)
        with pytest.raises((poplib.error_proto, EOFError, OSError)):
            client.quit()
        client.close()
        assert server.wait_for_sessions(1)
    assert len(box) == 4 and not server.sessions[0].quit


def test_drop_after_dele() -> None:
    box = _small_box()
    with serving(box, misbehave=Misbehaviour(drop_after_dele=True)) as server:
        client = _login(server.port)
        assert client.dele(1).startswith(b"+OK")
        with pytest.raises((poplib.error_proto, EOFError, OSError)):
            client.stat()
        client.close()
        assert server.wait_for_sessions(1)
    assert len(box) == 4


@pytest.mark.parametrize("code", [IN_USE, LOGIN_DELAY, b"[SYS/PERM] Account disabled"])
def test_auth_error_response_codes(code: bytes) -> None:
    with serving(misbehave=Misbehaviour(auth_error=code)) as server:
        client = poplib.POP3("127.0.0.1", server.port, timeout=5)
        client.user("demo")
        with pytest.raises(poplib.error_proto) as info:
            client.pass_(PASSWORD)
        client.quit()
    assert info.value.args[0] == b"-ERR " + code


def test_lying_list_sizes() -> None:
    box = _small_box()
    with serving(box, misbehave=Misbehaviour(list_size_delta=-3)) as server:
        client = _login(server.port)
        sizes = [int(line.split()[1]) for line in client.list()[1]]
        _, lines, _ = client.retr(1)
        client.quit()
    assert sizes == [len(box.message(u)) - 3 for u in box.uids]
    assert b"\r\n".join(lines) + b"\r\n" == box.message(box.uids[0])


def test_uidl_misbehaviours() -> None:
    mis = Misbehaviour(weird_uidls=WEIRD_UIDLS[:2], duplicate_uidl=False)
    with serving(misbehave=mis) as server:
        client = _login(server.port)
        shown = [line.split(b" ", 1)[1] for line in client.uidl()[1]]
        client.quit()
    assert shown[:2] == [b"../../etc/passwd", b"a/b"]
    with serving(misbehave=Misbehaviour(duplicate_uidl=True)) as server:
        client = _login(server.port)
        shown = [line.split(b" ", 1)[1] for line in client.uidl()[1]]
        client.quit()
    assert shown[0] == shown[1] and len(set(shown)) == 3


def test_changing_uidls_differ_per_session() -> None:
    with serving(misbehave=Misbehaviour(changing_uidl=True)) as server:
        seen = []
        for _ in range(2):
            client = _login(server.port)
            seen.append(client.uidl()[1])
            client.quit()
    assert not set(seen[0]) & set(seen[1])


def test_no_uidl() -> None:
    with serving(misbehave=Misbehaviour(no_uidl=True)) as server:
        client = _login(server.port)
        assert "UIDL" not in client.capa()
        with pytest.raises(poplib.error_proto):
            client.uidl()
        client.quit()


def test_malformed_listings() -> None:
    with serving(misbehave=Misbehaviour(malformed_listings=True)) as server:
        client = _login(server.port)
        listing = client.list()[1]
        client.quit()
    assert listing[0].split()[0] == b"1"
    assert any(len(line.split()) != 2 or not line.split()[1].isdigit() for line in listing[1:])


def test_bare_lf_line_endings() -> None:
    with serving(misbehave=Misbehaviour(bare_lf=True)) as server, raw(server.port) as sock:
        greeting = _read_until(sock, b"\n")
        sock.sendall(b"CAPA\r\nQUIT\r\n")
        data = _read_all(sock)
    assert greeting.endswith(b"ready\n") or b"\r" not in greeting
    assert b"\r" not in data and data.endswith(b".\n+OK bye\n")


def test_non_pop3_greeting() -> None:
    mis = Misbehaviour(greeting=b"220 smtp.example.com ESMTP ready")
    with serving(misbehave=mis) as server, raw(server.port) as sock:
        assert _read_until(sock, b"\r\n") == b"220 smtp.example.com ESMTP ready\r\n"


def test_silent_server_never_speaks() -> None:
    with serving(misbehave=Misbehaviour(silent=True)) as server, raw(server.port) as sock:
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_trickle_still_delivers_the_greeting() -> None:
    with serving(misbehave=Misbehaviour(trickle_delay=0.001)) as server, \
            raw(server.port) as sock:
        assert _read_until(sock, b"\r\n").startswith(b"+OK POP3 ready <")


def test_huge_line_in_retr() -> None:
    mis = Misbehaviour(huge_line_in_retr=1, huge_line_size=3 * 1024 * 1024)
    with serving(misbehave=mis) as server, raw(server.port) as sock:
        _raw_login(sock)
        sock.sendall(b"RETR 1\r\n")
        status = _read_until(sock, b"\r\n")
        received = len(status) - status.index(b"\r\n") - 2
        while received < 2 * 1024 * 1024:
            chunk = sock.recv(65536)
            assert chunk and b"\n" not in chunk
            received += len(chunk)


def test_endless_retr_ends_when_the_client_leaves() -> None:
    with serving(misbehave=Misbehaviour(endless_retr=1)) as server:
        with raw(server.port) as sock:
            _raw_login(sock)
            sock.sendall(b"RETR 1\r\n")
            received = 0
            while received < 4 * 1024 * 1024:
                received += len(sock.recv(65536))
        assert server.wait_for_sessions(1)


def test_stls_refused(certs: TestCerts) -> None:
    mis = Misbehaviour(stls_refused=True)
    with serving(tls_context=certs.server_context(), misbehave=mis) as server:
        client = poplib.POP3("127.0.0.1", server.port, timeout=5)
        assert "STLS" in client.capa()
        with pytest.raises(poplib.error_proto, match="SYS/TEMP"):
            client.stls(certs.client_context())
        client.quit()


def test_stls_injects_plaintext_before_handshake(certs: TestCerts) -> None:
    mis = Misbehaviour(stls_inject=True)
    with serving(tls_context=certs.server_context(), misbehave=mis) as server, \
            raw(server.port) as sock:
        _read_until(sock, b"\r\n")
        sock.sendall(b"STLS\r\n")
        data = _read_until(sock, b"injected\r\n")
        assert data == b"+OK Begin TLS negotiation\r\n+OK injected\r\n"
        tls = certs.client_context().wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"NOOP\r\n")
        assert tls.recv(100).startswith(b"-ERR")  # NOOP is a TRANSACTION command
        tls.close()

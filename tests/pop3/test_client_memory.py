"""POP3Session over the scripted MemoryStream: dialogue tests (expect → reply)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from popkeep.errors import (
    AuthError,
    LimitExceeded,
    MessageError,
    NetworkTimeout,
    RemoteProtocolError,
    SecurityError,
    ServerBusy,
    ServerRefused,
)
from popkeep.headers import header_digest, header_of
from popkeep.model import ServerStat
from popkeep.pop3.codec import apop_digest, plain_response, stuff
from popkeep.sources.pop3 import POP3Session, SessionSettings
from popkeep.transport.base import Stream, TLSSettings
from popkeep.transport.memory import MemoryStream

CAPA_TLS = b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"
CAPA_USER = b"+OK\r\nUSER\r\nUIDL\r\n.\r\n"
CAPA_PIPE = b"+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n"


def make_settings(**kw: Any) -> SessionSettings:
    base: dict[str, Any] = dict(host="mail.test", port=110, tls="none",
                                tls_settings=TLSSettings("mail.test"), user="u", password="s3cret")
    base.update(kw)
    return SessionSettings(**base)


def opener(stream: MemoryStream) -> Callable[..., Awaitable[Stream]]:
    async def open_(host: str, port: int, tls: TLSSettings | None, ct: float, rt: float) -> Stream:
        return stream
    return open_


def logged_in(capa: bytes = CAPA_USER) -> MemoryStream:
    return (MemoryStream().reply(b"+OK ready\r\n")
            .expect(b"CAPA").reply(capa)
            .expect(b"USER u").reply(b"+OK\r\n")
            .expect(b"PASS s3cret").reply(b"+OK in\r\n")
            .expect(b"CAPA").reply(capa))


def connect(stream: MemoryStream, **kw: Any) -> POP3Session:
    return asyncio.run(POP3Session.connect(make_settings(**kw), opener(stream)))


def run(coro_fn: Callable[[POP3Session], Awaitable[Any]], stream: MemoryStream,
        **kw: Any) -> Any:
    async def main() -> Any:
        session = await POP3Session.connect(make_settings(**kw), opener(stream))
        return await coro_fn(session)
    return asyncio.run(main())


def test_login_stat_quit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="popkeep")
    stream = (logged_in().expect(b"STAT").reply(b"+OK 2 320\r\n")
              .expect(b"QUIT").reply(b"+OK bye\r\n"))

    async def body(s: POP3Session) -> tuple[ServerStat, bool]:
        return await s.stat(), await s.quit()

    assert run(body, stream) == (ServerStat(2, 320), True)
    assert stream.finished and stream.closed
    assert "s3cret" not in caplog.text
    assert "PASS ***" in caplog.text
    assert "plaintext" in caplog.text  # tls="none" warns


def test_starttls_then_login_and_injection_discarded() -> None:
    stream = (MemoryStream().reply(b"+OK ready\r\n")
              .expect(b"CAPA").reply(CAPA_TLS)
              .expect(b"STLS").reply(b"+OK go\r\n").reply(b"+OK\r\nINJECTED\r\n.\r\n")
              .handshake()
              .expect(b"CAPA").reply(b"+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
              .expect(b"AUTH PLAIN " + plain_response("u", "s3cret").encode()).reply(b"+OK\r\n")
              .expect(b"CAPA").reply(b"+OK\r\nUIDL\r\n.\r\n"))
    session = connect(stream, tls="starttls")
    assert session.tls is not None
    assert session.capabilities == {"UIDL": []}
    assert stream.finished


def test_stls_not_advertised() -> None:
    stream = MemoryStream().reply(b"+OK ready\r\n").expect(b"CAPA").reply(CAPA_USER)
    with pytest.raises(SecurityError, match="STLS"):
        connect(stream, tls="starttls")
    assert stream.written == [b"CAPA"]


def test_stls_refused() -> None:
    stream = (MemoryStream().reply(b"+OK ready\r\n").expect(b"CAPA").reply(CAPA_TLS)
              .expect(b"STLS").reply(b"-ERR not today\r\n"))
    with pytest.raises(SecurityError, match="not today"):
        connect(stream, tls="starttls")
    assert stream.written == [b"CAPA", b"STLS"]


def test_apop_when_no_user_capability() -> None:
    stamp = "<1896.697170952@dbc.mtview.ca.us>"
    stream = (MemoryStream().reply(f"+OK hi {stamp}\r\n".encode())
              .expect(b"CAPA").reply(b"+OK\r\nUIDL\r\n.\r\n")
              .expect(f"APOP u {apop_digest(stamp, 's3cret')}".encode()).reply(b"+OK\r\n")
              .expect(b"CAPA").reply(b"-ERR\r\n"))
    session = connect(stream)
    assert session.greeting.endswith(stamp)
    assert stream.finished


def test_no_capa_falls_back_to_user() -> None:
    stream = (MemoryStream().reply(b"+OK ready\r\n").expect(b"CAPA").reply(b"-ERR what\r\n")
              .expect(b"USER u").reply(b"+OK\r\n").expect(b"PASS s3cret").reply(b"+OK\r\n")
              .expect(b"CAPA").reply(b"-ERR what\r\n"))
    assert connect(stream).capabilities == {}


def test_plain_without_initial_response_when_too_long() -> None:
    password = "p" * 200
    response = plain_response("u", password)
    stream = (MemoryStream().reply(b"+OK ready\r\n")
              .expect(b"CAPA").reply(b"+OK\r\nSASL PLAIN\r\n.\r\n")
              .expect(b"AUTH PLAIN").reply(b"+ \r\n")
              .expect(response.encode()).reply(b"+OK\r\n")
              .expect(b"CAPA").reply(b"+OK\r\n.\r\n"))
    connect(stream, password=password)
    assert stream.finished


@pytest.mark.parametrize(("reply", "error"), [
    (b"-ERR [AUTH] bad password\r\n", AuthError),
    (b"-ERR bad password\r\n", AuthError),
    (b"-ERR [IN-USE] mailbox locked\r\n", ServerBusy),
    (b"-ERR [LOGIN-DELAY] wait 5 minutes\r\n", ServerBusy),
    (b"-ERR [SYS/TEMP] try later\r\n", ServerBusy),
    (b"-ERR [SYS/PERM] account disabled\r\n", ServerRefused),
])
def test_pass_refusals(reply: bytes, error: type[Exception]) -> None:
    stream = (MemoryStream().reply(b"+OK ready\r\n").expect(b"CAPA").reply(CAPA_USER)
              .expect(b"USER u").reply(b"+OK\r\n").expect(b"PASS s3cret").reply(reply))
    with pytest.raises(error) as info:
        connect(stream)
    assert reply[5:].decode().split("] ")[-1].strip() in str(info.value)
    assert stream.closed


@pytest.mark.parametrize(("capa", "reply", "retry_after"), [
    (CAPA_USER, b"-ERR [LOGIN-DELAY 600] wait 10 minutes\r\n", 600.0),
    (b"+OK\r\nUSER\r\nLOGIN-DELAY 900\r\n.\r\n", b"-ERR [LOGIN-DELAY] wait\r\n", 900.0),
    (b"+OK\r\nUSER\r\nLOGIN-DELAY 900\r\n.\r\n", b"-ERR [LOGIN-DELAY 60] wait\r\n", 60.0),
    (CAPA_USER, b"-ERR [LOGIN-DELAY] wait a while\r\n", None),
    (b"+OK\r\nUSER\r\nLOGIN-DELAY 900\r\n.\r\n", b"-ERR [IN-USE] locked\r\n", None),
])  # fmt: skip
def test_login_delay_says_how_long(capa: bytes, reply: bytes, retry_after: float | None) -> None:
    """RFC 2449 §8.1.1: the service waits as long as the server asks, from the number
    in the brackets some servers send, else from CAPA LOGIN-DELAY (§6.5)."""
    stream = (MemoryStream().reply(b"+OK ready\r\n").expect(b"CAPA").reply(capa)
              .expect(b"USER u").reply(b"+OK\r\n").expect(b"PASS s3cret").reply(reply))
    with pytest.raises(ServerBusy) as info:
        connect(stream)
    assert info.value.retry_after == retry_after


def test_uids_in_number_order_and_a_shared_uid_set_apart() -> None:
    stream = logged_in().expect(b"UIDL").reply(b"+OK\r\n2 bbb\r\n1 aaa\r\n.\r\n")
    assert list(run(lambda s: s.uids(2), stream).keys.items()) == [("aaa", 1), ("bbb", 2)]
    shared = logged_in().expect(b"UIDL").reply(b"+OK\r\n1 aaa\r\n2 aaa\r\n3 b\r\n.\r\n")
    index = run(lambda s: s.uids(3), shared)
    assert index.keys == {"b": 3} and index.shared == {"aaa": [1, 2]}


def test_few_sizes_are_asked_one_by_one_pipelined() -> None:
    stream = (logged_in(CAPA_PIPE).expect(b"LIST 3").expect(b"LIST 7")
              .reply(b"+OK 3 300\r\n+OK 7 700\r\n"))
    assert run(lambda s: s.sizes([3, 7], 100), stream) == {3: 300, 7: 700}


def test_many_sizes_take_one_scan_listing() -> None:
    scan = b"+OK\r\n" + b"".join(b"%d %d\r\n" % (n, n * 10) for n in range(1, 11)) + b".\r\n"
    # without PIPELINING, more than a handful of single LISTs would cost a round trip each
    stream = logged_in().expect(b"LIST").reply(scan)
    wanted = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert run(lambda s: s.sizes(wanted, 10), stream) == {n: n * 10 for n in wanted}
    # inconsistent: 2 not listed, 3 listed twice, 4 unparsable: only 1 has a size
    short = logged_in().expect(b"LIST").reply(b"+OK\r\n1 10\r\n3 5\r\n3 6\r\n4 x\r\n.\r\n")
    assert run(lambda s: s.sizes(wanted, 10), short) == {1: 10}


@pytest.mark.parametrize("reply", [b"-ERR no such message\r\n", b"+OK 4 12\r\n", b"+OK 3\r\n"])
def test_single_list_refused_or_mismatched_leaves_the_message_out(reply: bytes) -> None:
    stream = (logged_in(CAPA_PIPE).expect(b"LIST 3").expect(b"LIST 5")
              .reply(reply + b"+OK 5 50\r\n"))
    assert run(lambda s: s.sizes([3, 5], 100), stream) == {5: 50}


def test_uids_without_uidl() -> None:
    stream = logged_in().expect(b"UIDL").reply(b"-ERR unknown command\r\n")
    assert run(lambda s: s.uids(1), stream) is None  # optional (RFC 1939 §7): the caller decides


def collect(session: POP3Session, numbers: list[int]) -> Awaitable[list[tuple[int, bytes]]]:
    async def main() -> list[tuple[int, bytes]]:
        return [(n, m.read_all()) async for n, m in session.retrieve(numbers)]
    return main()


def test_retrieve_pipelined_window() -> None:
    messages = {n: f"Subject: {n}\r\n\r\n.body {n}\r\n".encode() for n in range(1, 6)}
    stream = logged_in(CAPA_PIPE)
    # window 2: two RETR first, then one more each time a reply completes
    stream.expect(b"RETR 1").expect(b"RETR 2").reply(b"+OK\r\n" + stuff(messages[1]))
    for n in (3, 4, 5):
        stream.expect(f"RETR {n}".encode()).reply(b"+OK\r\n" + stuff(messages[n - 1]))
    stream.reply(b"+OK\r\n" + stuff(messages[5]))
    got = run(lambda s: collect(s, [1, 2, 3, 4, 5]), stream, pipeline_window=2)
    assert got == sorted(messages.items())
    assert stream.finished


def test_retrieve_skips_refused_then_reports() -> None:
    stream = (logged_in().expect(b"RETR 1").reply(b"-ERR no such message\r\n")
              .expect(b"RETR 2").reply(b"+OK\r\nhi\r\n.\r\n"))
    seen: list[int] = []

    async def body(s: POP3Session) -> None:
        async for n, _ in s.retrieve([1, 2]):
            seen.append(n)

    with pytest.raises(MessageError, match=r"\[1\]"):
        run(body, stream)
    assert seen == [2]


def test_retrieve_size_limit_spoils_session() -> None:
    stream = (logged_in().expect(b"RETR 1").reply(b"+OK\r\n" + b"x" * 100 + b"\r\n")
              .reply(b"y" * 100 + b"\r\n.\r\n"))

    async def body(s: POP3Session) -> bool:
        with pytest.raises(LimitExceeded):
            await collect(s, [1])
        return await s.quit()

    assert run(body, stream, max_message_size=150) is False
    assert b"QUIT" not in stream.written


def test_abandoned_retrieve_is_drained_before_next_command() -> None:
    stream = (logged_in(CAPA_PIPE).expect(b"RETR 1").expect(b"RETR 2")
              .reply(b"+OK\r\none\r\n.\r\n+OK\r\ntwo\r\n.\r\n")
              .expect(b"DELE 1").reply(b"+OK\r\n").expect(b"QUIT").reply(b"+OK\r\n"))

    async def body(s: POP3Session) -> bool:
        agen = s.retrieve([1, 2])
        number, message = await agen.__anext__()
        assert (number, message.read_all()) == (1, b"one\r\n")
        await agen.aclose()
        await s.delete([1])
        return await s.quit()

    assert run(body, stream) is True
    assert stream.finished


def test_delete_refusal_and_quit_err() -> None:
    stream = (logged_in().expect(b"DELE 1").reply(b"+OK\r\n").expect(b"DELE 2")
              .reply(b"-ERR already deleted\r\n").expect(b"QUIT")
              .reply(b"-ERR [SYS/TEMP] could not remove\r\n"))

    async def body(s: POP3Session) -> bool:
        assert await s.delete([1, 2]) == [2]
        return await s.quit()

    assert run(body, stream) is False


def test_quit_on_dropped_connection() -> None:
    stream = logged_in().expect(b"QUIT").eof()
    assert run(lambda s: s.quit(), stream) is False


def test_response_timeout() -> None:
    stream = logged_in().expect(b"STAT").hang()
    with pytest.raises(NetworkTimeout):
        run(lambda s: s.stat(), stream, response_timeout=0.05)


def test_session_timeout() -> None:
    stream = logged_in().expect(b"STAT").hang()
    with pytest.raises(LimitExceeded, match="session"):
        run(lambda s: s.stat(), stream, session_timeout=0.2, response_timeout=5)


def test_garbage_reply_is_protocol_error() -> None:
    stream = logged_in().expect(b"STAT").reply(b"HELLO\r\n")
    with pytest.raises(RemoteProtocolError):
        run(lambda s: s.stat(), stream)


def test_greeting_err_is_server_busy() -> None:
    stream = MemoryStream().reply(b"-ERR [SYS/TEMP] overloaded\r\n")
    with pytest.raises(ServerBusy, match="overloaded"):
        connect(stream)


CAPA_TOP = b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n"


def test_header_digests_pipeline_top_n_0_and_match_the_retrieved_header() -> None:
    one = b"From: a@x\r\nSubject: one\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"
    two = b"From: a@x\r\nSubject: two\r\nMessage-ID: <2@x>\r\n\r\n"
    stream = (logged_in(CAPA_TOP).expect(b"TOP 1 0").expect(b"TOP 2 0").expect(b"TOP 3 0")
              .reply(b"+OK\r\n" + stuff(one.split(b"\r\n\r\n")[0] + b"\r\n\r\n")
                     + b"-ERR no such message\r\n"
                     # a server that adds a field it maintains (mbox "Status:") and folds
                     + b"+OK\r\nFrom: a@x\r\nStatus: RO\r\nSubject:\r\n two\r\n"
                       b"Message-ID: <2@x>\r\n\r\n.\r\n"))
    got = run(lambda s: s.header_digests([1, 2, 3]), stream)
    assert got == {1: header_digest(header_of([one])), 3: header_digest(header_of([two]))}
    assert got[1] != got[3]
    assert stream.finished


def test_header_digests_without_top_in_capa_ask_nothing() -> None:
    stream = logged_in(CAPA_PIPE)  # a CAPA without TOP: RFC 2449 §6.3 says it has none
    assert run(lambda s: s.header_digests([1, 2]), stream) == {}
    assert stream.finished


TOKEN = "ya29." + "t" * 300  # access tokens are long: no initial response fits 255 octets
#: the server's error challenge: base64 of a JSON object (RFC 7628 §3.2.2)
_ERROR = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}')


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


@pytest.mark.parametrize(("auth", "capa", "mechanism", "raw"), [
    ("oauth2", b"+OK\r\nUSER\r\n.\r\n", b"XOAUTH2",
     b"user=u\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"),
    ("oauth2", b"+OK\r\nSASL PLAIN XOAUTH2 OAUTHBEARER\r\n.\r\n", b"XOAUTH2",
     b"user=u\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"),
    ("oauth2", b"+OK\r\nSASL PLAIN OAUTHBEARER\r\n.\r\n", b"OAUTHBEARER",
     b"n,a=u,\x01host=mail.test\x01port=110\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"),
    ("oauthbearer", b"+OK\r\nUSER\r\n.\r\n", b"OAUTHBEARER",
     b"n,a=u,\x01host=mail.test\x01port=110\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"),
])
def test_oauth_sasl_exchange_byte_for_byte(
    auth: str, capa: bytes, mechanism: bytes, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 5034 §4: AUTH mechanism, "+ ", the base64 client message, +OK."""
    caplog.set_level(logging.DEBUG)
    stream = (MemoryStream().reply(b"+OK ready\r\n")
              .expect(b"CAPA").reply(capa)
              .expect(b"AUTH " + mechanism).reply(b"+ \r\n")
              .expect(_b64(raw)).reply(b"+OK signed in\r\n")
              .expect(b"CAPA").reply(capa))
    connect(stream, auth=auth, password=TOKEN)
    assert stream.finished
    assert TOKEN not in caplog.text and _b64(raw).decode() not in caplog.text


def test_short_token_goes_as_initial_response() -> None:
    raw = _b64(b"user=u\x01auth=Bearer t\x01\x01")
    stream = (MemoryStream().reply(b"+OK ready\r\n")
              .expect(b"CAPA").reply(CAPA_USER)
              .expect(b"AUTH XOAUTH2 " + raw).reply(b"+OK\r\n")
              .expect(b"CAPA").reply(CAPA_USER))
    connect(stream, auth="xoauth2", password="t")
    assert stream.finished


_XOAUTH2 = b"user=u\x01auth=Bearer " + TOKEN.encode() + b"\x01\x01"
_OAUTHBEARER = (b"n,a=u,\x01host=mail.test\x01port=110\x01auth=Bearer "
                + TOKEN.encode() + b"\x01\x01")


@pytest.mark.parametrize(("auth", "mechanism", "raw", "answer"), [
    ("xoauth2", b"XOAUTH2", _XOAUTH2, b""),  # Google/Microsoft: an empty response
    ("oauthbearer", b"OAUTHBEARER", _OAUTHBEARER, b"AQ=="),  # RFC 7628 §3.2.3: one ^A
])
def test_refused_token_error_challenge_then_err(
    auth: str, mechanism: bytes, raw: bytes, answer: bytes
) -> None:
    """The server's JSON error comes as a second challenge; the client answers it
    as the mechanism says and the -ERR that follows is an AuthError naming it."""
    stream = (MemoryStream().reply(b"+OK ready\r\n")
              .expect(b"CAPA").reply(CAPA_USER)
              .expect(b"AUTH " + mechanism).reply(b"+ \r\n")
              .expect(_b64(raw)).reply(b"+ " + _ERROR + b"\r\n")
              .expect(answer).reply(b"-ERR [AUTH] Authentication failed\r\n"))
    with pytest.raises(AuthError, match=r"AUTH .*\[AUTH\] Authentication failed.*status 401, "
                                        r"scope https://mail.google.com/"):
        connect(stream, auth=auth, password=TOKEN)
    assert stream.finished

"""Codec tests: tables of bytes → events, the state table, bounds, STLS discard, and
hypothesis round-trips / fuzzing of the multi-line framing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from popkeep.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from popkeep.pop3.codec import (
    MAX_CAPA_LINES,
    MAX_SINGLE_LINE,
    NEED_DATA,
    Closed,
    Command,
    Connection,
    Continue,
    Data,
    End,
    Err,
    Event,
    Greeting,
    Ok,
    SaslResponse,
    State,
    apop_digest,
    plain_response,
    stuff,
)


def events(conn: Connection, data: bytes = b"") -> list[Event]:
    if data:
        conn.receive_data(data)
    out: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, Closed):
            break
    return out


def body(evs: list[Event]) -> bytes:
    return b"".join(e.data for e in evs if isinstance(e, Data))


def authorized() -> Connection:
    conn = Connection()
    assert events(conn, b"+OK ready\r\n") == [Greeting("ready", None)]
    conn.send(Command("USER", "u"))
    events(conn, b"+OK\r\n")
    conn.send(Command("PASS", "p"))
    events(conn, b"+OK in\r\n")
    assert conn.state is State.TRANSACTION
    return conn


GREETINGS = [
    (b"+OK POP3 ready\r\n", Greeting("POP3 ready", None)),
    (b"+OK POP3 <1896.697170952@dbc.mtview.ca.us>\r\n",
     Greeting("POP3 <1896.697170952@dbc.mtview.ca.us>", "<1896.697170952@dbc.mtview.ca.us>")),
    (b"+OK\n", Greeting("", None)),
    (b"+ok lower case\r\n", Greeting("lower case", None)),
    (b"-ERR [SYS/TEMP] go away\r\n", Err("go away", "SYS/TEMP")),
]


@pytest.mark.parametrize(("wire", "event"), GREETINGS)
def test_greeting(wire: bytes, event: Event) -> None:
    conn = Connection()
    assert events(conn, wire) == [event]
    assert conn.state is (State.CLOSED if isinstance(event, Err) else State.AUTHORIZATION)


SINGLE = [
    (Command("STAT"), b"+OK 2 320\r\n", [Ok("2 320")]),
    (Command("DELE", "1"), b"-ERR no such message\r\n", [Err("no such message")]),
    (Command("NOOP"), b"+OK [SOME/CODE] hi\r\n", [Ok("hi", "SOME/CODE")]),
    (Command("LIST", "2"), b"+OK 2 200\r\n", [Ok("2 200")]),
    (Command("UIDL", "2"), b"+OK 2 abc\n", [Ok("2 abc")]),
]


@pytest.mark.parametrize(("cmd", "wire", "expected"), SINGLE)
def test_single_line(cmd: Command, wire: bytes, expected: list[Event]) -> None:
    conn = authorized()
    conn.send(cmd)
    assert events(conn, wire) == expected
    assert conn.pending == 0


MULTI = [
    (b"+OK\r\n.\r\n", b""),
    (b"+OK 3 octets\r\nab\r\n.\r\n", b"ab\r\n"),
    (b"+OK\r\n..\r\n...x\r\n.y\r\n.\r\n", b".\r\n..x\r\ny\r\n"),
    (b"+OK\nbare\n..\n.\n", b"bare\n.\n"),  # bare LF server
    (b"+OK\r\na\rb\x00\xff\r\n\r\n.\r\n", b"a\rb\x00\xff\r\n\r\n"),  # lone CR, NUL, 8-bit
    (b"+OK\r\n.\r\nnot\r\n.\r\n", None),  # data after the terminator = unsolicited
]


@pytest.mark.parametrize(("wire", "expected"), MULTI)
def test_multi_line(wire: bytes, expected: bytes | None) -> None:
    conn = authorized()
    conn.send(Command("RETR", "1"))
    if expected is None:
        with pytest.raises(RemoteProtocolError, match="nobody asked"):
            events(conn, wire)
        return
    evs = events(conn, wire)
    assert evs[0] == Ok(wire[4:wire.index(b"\n")].strip().decode())
    assert evs[-1] == End()
    assert body(evs) == expected
    assert conn.pending == 0


def test_multi_line_err_has_no_body() -> None:
    conn = authorized()
    conn.send(Command("RETR", "9"))
    assert events(conn, b"-ERR [IN-USE] locked\r\n") == [Err("locked", "IN-USE")]


def test_pipelined_responses_in_order() -> None:
    conn = authorized()
    wire = b"".join(conn.send(Command("RETR", str(n))) for n in (1, 2))
    wire += conn.send(Command("DELE", "1"))
    assert wire == b"RETR 1\r\nRETR 2\r\nDELE 1\r\n"
    evs = events(conn, b"+OK\r\none\r\n.\r\n-ERR gone\r\n+OK deleted\r\n")
    assert evs == [Ok(""), Data(b"one\r\n"), End(), Err("gone"), Ok("deleted")]


def test_data_chunks_end_on_line_boundaries() -> None:
    conn = authorized()
    conn.send(Command("RETR", "1"))
    pieces = [b"+OK\r\nhel", b"lo\r", b"\nwor", b"ld\r\n.", b"\r", b"\n"]
    out: list[Event] = []
    for piece in pieces:
        out += events(conn, piece)
    datas = [e.data for e in out if isinstance(e, Data)]
    assert datas == [b"hello\r\n", b"world\r\n"]
    assert out[-1] == End()


def test_sasl_continuation() -> None:
    conn = Connection()
    events(conn, b"+OK hi\r\n")
    assert conn.send(Command("AUTH", "PLAIN")) == b"AUTH PLAIN\r\n"
    assert events(conn, b"+ \r\n") == [Continue("")]
    assert conn.send(SaslResponse("AHUAcA==")) == b"AHUAcA==\r\n"
    assert events(conn, b"+OK welcome\r\n") == [Ok("welcome")]
    assert conn.state is State.TRANSACTION


def test_continuation_outside_sasl_is_an_error() -> None:
    conn = authorized()
    conn.send(Command("STAT"))
    with pytest.raises(RemoteProtocolError):
        events(conn, b"+ more\r\n")
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


ILLEGAL = [
    (State.AUTHORIZATION, Command("PASS", "x")),  # PASS before USER
    (State.AUTHORIZATION, Command("STAT")),
    (State.AUTHORIZATION, Command("USER", "a\r\nDELE 1")),  # injection
    (State.AUTHORIZATION, Command("USER", "a b")),
    (State.AUTHORIZATION, Command("USER")),
    (State.TRANSACTION, Command("USER", "x")),
    (State.TRANSACTION, Command("STLS")),
    (State.TRANSACTION, Command("RETR", "x1")),
    (State.TRANSACTION, Command("TOP", "1")),
    (State.TRANSACTION, Command("DELE", "1", "2")),
    (State.TRANSACTION, Command("XYZZY")),
]


@pytest.mark.parametrize(("state", "cmd"), ILLEGAL)
def test_illegal_commands(state: State, cmd: Command) -> None:
    conn = authorized() if state is State.TRANSACTION else Connection()
    if state is State.AUTHORIZATION:
        events(conn, b"+OK\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(cmd)
    assert conn.pending == 0


def test_no_command_before_greeting_or_behind_a_state_change() -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError):
        conn.send(Command("CAPA"))
    events(conn, b"+OK\r\n")
    conn.send(Command("USER", "u"))
    with pytest.raises(LocalProtocolError, match="in flight"):
        conn.send(Command("PASS", "p"))
    conn = authorized()
    conn.send(Command("QUIT"))
    with pytest.raises(LocalProtocolError):
        conn.send(Command("NOOP"))
    # Behind a pipelined window: the state change is the last of many in flight.
    conn = authorized()
    for n in range(1, 40):
        conn.send(Command("RETR", str(n)))
    conn.send(Command("NOOP"))  # no state change in flight yet: fine
    conn.send(Command("QUIT"))
    with pytest.raises(LocalProtocolError, match="in flight"):
        conn.send(Command("RETR", "40"))
    assert conn.pending == 41


def test_pass_may_contain_spaces_and_is_masked() -> None:
    conn = Connection()
    events(conn, b"+OK\r\n")
    conn.send(Command("USER", "u"))
    events(conn, b"+OK\r\n")
    cmd = Command("PASS", "correct horse")
    assert conn.send(cmd) == b"PASS correct horse\r\n"
    assert "horse" not in str(cmd) and "horse" not in repr(cmd)
    assert "secret" not in str(SaslResponse("secret"))
    assert str(Command("AUTH", "PLAIN", "AGZvbwBiYXI=")) == "AUTH PLAIN ***"


def test_command_length_limit() -> None:
    conn = Connection()
    events(conn, b"+OK\r\n")
    with pytest.raises(LocalProtocolError, match="255"):
        conn.send(Command("USER", "u" * 260))


def test_stls_discards_injected_plaintext() -> None:
    conn = Connection()
    events(conn, b"+OK\r\n")
    conn.send(Command("STLS"))
    # The attacker appends a fake reply to the +OK in the same segment.
    assert events(conn, b"+OK begin TLS\r\n+OK injected\r\n") == [Ok("begin TLS")]
    assert conn.state is State.TLS_PENDING
    conn.receive_data(b"-ERR more plaintext\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send(Command("CAPA"))
    conn.start_tls_done()
    conn.send(Command("CAPA"))
    evs = events(conn, b"+OK\r\nUSER\r\n.\r\n")
    assert evs == [Ok(""), Data(b"USER\r\n"), End()]
    with pytest.raises(LocalProtocolError):
        conn.send(Command("STLS"))  # only once (RFC 2595 §4)


def test_single_line_limit() -> None:
    conn = authorized()
    conn.send(Command("STAT"))
    conn.receive_data(b"+OK " + b"x" * 600 + b"\r\n")
    assert conn.next_event() == Ok("x" * 600)  # lenient beyond RFC 2449's 512
    conn.send(Command("STAT"))
    conn.receive_data(b"+OK " + b"x" * MAX_SINGLE_LINE)
    with pytest.raises(LimitExceeded):
        conn.next_event()


def test_a_message_line_longer_than_max_line_is_passed_on_in_pieces() -> None:
    # Issue 16 item 3: a 10 MiB line is stored intact, memory bounded by max_line.
    conn = in_transaction(max_line=1000)
    conn.send(Command("RETR", "1"))
    assert body(events(conn, b"+OK\r\n" + b"y" * 900 + b"\r\n")) == b"y" * 900 + b"\r\n"
    pieces: list[Event] = []
    for part in (b"..z" + b"z" * 1500, b"z" * 400, b".z" * 1000, b"\r\n.", b"tail\r\n.\r\n"):
        pieces += events(conn, part)
        assert len(conn._buf) <= 1000 + len(part)
    assert pieces[-1] == End()
    datas = [e.data for e in pieces if isinstance(e, Data)]
    assert all(len(d) >= 1000 or d.endswith(b"\n") for d in datas), [len(d) for d in datas]
    long_line = b".z" + b"z" * 1900 + b".z" * 1000 + b"\r\n"  # unstuffed once, at its start
    assert b"".join(datas) == long_line + b"tail\r\n"


def test_eof_between_and_inside_responses() -> None:
    conn = authorized()
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    conn = authorized()
    conn.send(Command("RETR", "1"))
    assert body(events(conn, b"+OK\r\npartial\r\n")) == b"partial\r\n"
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed"):
        conn.next_event()
    conn = authorized()
    conn.send(Command("QUIT"))
    assert events(conn, b"+OK bye\r\n") == [Ok("bye")]
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("line", [b"OK\r\n", b"+OKAY\r\n", b"* 1\r\n", b"\r\n"])
def test_garbage_status(line: bytes) -> None:
    conn = authorized()
    conn.send(Command("NOOP"))
    with pytest.raises(RemoteProtocolError):
        events(conn, line)


def test_auth_helpers() -> None:
    # RFC 1939 §7 example.
    assert apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf") == (
        "c4c9334bac560ecc979e58001b3e22fb"
    )
    assert plain_response("tim", "tanstaaftanstaaf") == "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"


# -- bounded listings (issue 16 item 3) ----------------------------------------------


def in_transaction(**kw: object) -> Connection:
    conn = Connection(**kw)  # type: ignore[arg-type]
    events(conn, b"+OK\r\n")
    conn.send(Command("USER", "u"))
    events(conn, b"+OK\r\n")
    conn.send(Command("PASS", "p"))
    events(conn, b"+OK\r\n")
    return conn


@pytest.mark.parametrize("name", ["UIDL", "LIST"])
def test_listing_bounded_in_lines(name: str) -> None:
    conn = in_transaction(max_listing_lines=3)
    conn.send(Command(name))
    assert body(events(conn, b"+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n")) == b"1 a\r\n2 b\r\n3 c\r\n"
    conn.send(Command(name))
    with pytest.raises(LimitExceeded, match=f"^{name} listing longer than 3 lines"):
        events(conn, b"+OK\r\n" + b"".join(b"%d u%d\r\n" % (i, i) for i in range(1, 5)))
    assert conn.state is State.ERROR


def test_listing_bounded_in_octets_and_line_length() -> None:
    conn = in_transaction(max_listing_octets=100)
    conn.send(Command("UIDL"))
    with pytest.raises(LimitExceeded, match="longer than 500000 lines or 100 octets"):
        for i in range(1, 100):
            events(conn, b"+OK\r\n" if i == 1 else b"%d %s\r\n" % (i, b"u" * 30))
    conn = in_transaction()  # a listing line never longer than a status line
    conn.send(Command("LIST"))
    with pytest.raises(LimitExceeded, match=f"line longer than {MAX_SINGLE_LINE} octets"):
        events(conn, b"+OK\r\n1 " + b"9" * MAX_SINGLE_LINE)


def test_capa_bounded_but_retr_is_not_a_listing() -> None:
    conn = Connection()
    events(conn, b"+OK\r\n")
    conn.send(Command("CAPA"))
    with pytest.raises(LimitExceeded, match=r"^CAPA listing longer than"):
        events(conn, b"+OK\r\n" + b"X-CAP\r\n" * (MAX_CAPA_LINES + 1))
    conn = in_transaction(max_listing_lines=3)
    conn.send(Command("RETR", "1"))
    assert len(body(events(conn, b"+OK\r\n" + b"line\r\n" * 10 + b".\r\n"))) == 60


# -- server text is untrusted (issue 16 item 4) ------------------------------------------

HOSTILE_TEXT = [
    (b"-ERR \x1b[2J\x1b]0;owned\x07 bad\r\n", Err("\\x1b[2J\\x1b]0;owned\\x07 bad")),
    (b"-ERR [AUTH] wrong password hunter2!\r\n", Err("wrong password ********!", "AUTH")),
    (b"+OK a\rforged line\xc2\x85\xe2\x80\xae\r\n", Ok("a\\rforged line\\x85\\u202e")),
    (b"-ERR tab\tand DEL\x7f\r\n", Err("tab\\tand DEL\\x7f")),
]


@pytest.mark.parametrize(("wire", "event"), HOSTILE_TEXT)
def test_server_text_is_escaped_and_the_secret_masked(wire: bytes, event: Event) -> None:
    conn = Connection(secrets=["hunter2"])
    assert events(conn, b"+OK \x1b[31mhello hunter2\r\n") == [
        Greeting("\\x1b[31mhello ********", None)
    ]
    conn.send(Command("USER", "u"))
    assert events(conn, wire) == [event]


def test_garbage_status_is_quoted_safely() -> None:
    conn = Connection(secrets=["hunter2"])
    with pytest.raises(RemoteProtocolError) as caught:
        events(conn, b"220 \x1b[5m hunter2\r\n")
    assert "hunter2" not in str(caught.value) and "\x1b" not in str(caught.value)
    assert "220 \\x1b[5m ********" in str(caught.value)


# -- hypothesis --------------------------------------------------------------------------

line_bytes = st.lists(
    st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"a", b" ", b".\r\n"]),
    max_size=40,
).map(b"".join)


def retrieve(wire: bytes, cuts: list[int]) -> bytes:
    conn = authorized()
    conn.send(Command("RETR", "1"))
    out: list[Event] = []
    positions = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for a, b in itertools.pairwise(positions):
        out += events(conn, wire[a:b])
    assert out[0] == Ok("") and out[-1] == End()
    for event in out[1:-1]:
        assert isinstance(event, Data) and event.data.endswith(b"\n")
    assert conn.pending == 0
    return body(out)


@settings(max_examples=400, deadline=None)
@given(message=line_bytes | st.binary(max_size=200), cuts=st.lists(st.integers(0, 10_000)))
def test_stuff_round_trip(message: bytes, cuts: list[int]) -> None:
    """unstuff(stuff(m)) == m for complete-line messages, else m + CRLF; any chunking."""
    expected = message if message in (b"",) or message.endswith(b"\n") else message + b"\r\n"
    assert retrieve(b"+OK\r\n" + stuff(message), cuts) == expected


NEXT = {
    State.AUTHORIZATION: Command("USER", "u"),
    State.USER_ACCEPTED: Command("PASS", "p"),
    State.TRANSACTION: Command("RETR", "1"),
}


@settings(max_examples=400, deadline=None)
@given(prefix=st.sampled_from([b"", b"+OK hi\r\n", b"+OK <a@b>\r\n+OK\r\n+OK\r\n+OK\r\n"]),
       rest=st.lists(line_bytes | st.binary(max_size=30)).map(b"".join),
       cuts=st.lists(st.integers(0, 10_000)))
def test_fuzz_only_events_or_protocol_errors(prefix: bytes, rest: bytes, cuts: list[int]) -> None:
    """Any server byte stream yields events or RemoteProtocolError, never anything else."""
    stream = prefix + rest
    conn = Connection(max_line=64)
    positions = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    try:
        for a, b in itertools.pairwise(positions):
            conn.receive_data(stream[a:b])
            for event in events(conn):
                if isinstance(event, Greeting | Ok | Err | End) and conn.pending == 0:
                    follow_up = NEXT.get(conn.state)
                    if follow_up is not None:
                        conn.send(follow_up)
        conn.receive_data(b"")
        events(conn)
    except RemoteProtocolError:
        assert conn.state is State.ERROR


@settings(max_examples=300, deadline=None)
@given(message=line_bytes | st.binary(max_size=200), cuts=st.lists(st.integers(0, 10_000)),
       max_line=st.sampled_from([1, 2, 3, 8]))
def test_stuff_round_trip_with_long_lines(message: bytes, cuts: list[int], max_line: int) -> None:
    """Lines longer than max_line (split anywhere) still unstuff exactly."""
    expected = message if message in (b"",) or message.endswith(b"\n") else message + b"\r\n"
    wire = b"+OK\r\n" + stuff(message)
    conn = in_transaction(max_line=max_line)
    conn.send(Command("RETR", "1"))
    out: list[Event] = []
    positions = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for a, b in itertools.pairwise(positions):
        out += events(conn, wire[a:b])
    assert out[0] == Ok("") and out[-1] == End() and conn.pending == 0
    assert body(out) == expected

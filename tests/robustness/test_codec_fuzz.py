"""Fuzzing the POP3 codec over every response kind a client can be waiting for.

tests/pop3/test_codec.py fuzzes the greeting, USER/PASS and RETR. Here a
hypothesis-driven client walks the whole state table: after each complete
reply it picks a legal next step for the state it is in (CAPA and STLS in
AUTHORIZATION, AUTH PLAIN with "+ " continuations, APOP, pipelined LIST / UIDL /
RETR / TOP / STAT / DELE in TRANSACTION, the TLS hand-over), while the "server"
is an arbitrary byte stream cut at arbitrary points. The property (issue 3):
the codec returns events or raises its own RemoteProtocolError (or its
subclass LimitExceeded) — never IndexError, UnicodeError, LocalProtocolError
or anything else — and after an error it stays in ERROR.

Coverage-guided fuzzing with atheris is in tests/pop3/fuzz_codec.py (manual:
``.venv/bin/pip install atheris && .venv/bin/python tests/pop3/fuzz_codec.py
-max_total_time=60``).
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from popkeep.errors import RemoteProtocolError
from popkeep.pop3.codec import (
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
)

_T = State.TRANSACTION
MENU: dict[State, list[tuple[Command, ...]]] = {
    State.AUTHORIZATION: [
        (Command("CAPA"),), (Command("STLS"),), (Command("USER", "u"),),
        (Command("APOP", "u", "0" * 32),), (Command("AUTH", "PLAIN"),),
        (Command("AUTH", "PLAIN", "AHUAcA=="),), (Command("QUIT"),),
    ],
    State.USER_ACCEPTED: [(Command("PASS", "p w"),), (Command("QUIT"),)],
    _T: [
        (Command("STAT"),), (Command("LIST"),), (Command("UIDL"),), (Command("LIST", "1"),),
        (Command("UIDL", "2"),), (Command("RETR", "1"),), (Command("TOP", "1", "0"),),
        (Command("CAPA"),), (Command("DELE", "1"),), (Command("NOOP"),), (Command("RSET"),),
        (Command("UIDL"), Command("LIST"), Command("RETR", "1"), Command("RETR", "2")),
        (Command("RETR", "1"), Command("DELE", "1"), Command("STAT")), (Command("QUIT"),),
    ],
}

#: Pieces a server might send: valid replies of every kind, near misses, and junk.
PIECES = st.sampled_from([
    b"+OK\r\n", b"+OK hi <1.2@x>\r\n", b"-ERR no\r\n", b"-ERR [IN-USE] busy\r\n",
    b"-ERR [LOGIN-DELAY 600] wait\r\n", b"+OK [SYS/TEMP] \r\n", b"+ \r\n", b"+ YWJj\r\n",
    b"+\r\n", b".\r\n", b".\n", b"..\r\n", b"..x\r\n", b".x\r\n", b"1 abc\r\n", b"1 120\r\n",
    b"STLS\r\n", b"SASL PLAIN\r\n", b"\r\n", b"\n", b"\r", b"\x00", b"\xff\xfe", b"[", b"]",
    b"+OKAY\r\n", b"-ERRx\r\n", b"220 smtp\r\n", b"a" * 70, b" ",
])
STREAM = st.lists(PIECES | st.binary(max_size=20), max_size=60).map(b"".join)


class _Client:
    """Sends a legal next step (chosen by hypothesis) whenever the codec is idle."""

    def __init__(self, conn: Connection, choose: st.DataObject) -> None:
        self.conn, self.choose = conn, choose
        self.tls_done = False

    def react(self, event: Event) -> None:
        conn = self.conn
        if isinstance(event, Continue):
            conn.send(SaslResponse(self.choose.draw(st.sampled_from(["*", "AHUAcA=="]))))
            return
        if conn.state is State.TLS_PENDING:
            conn.start_tls_done()  # the handshake "happened"; plaintext is dropped
            self.tls_done = True
        if conn.pending or conn.state not in MENU:
            return
        options = [c for c in MENU[conn.state] if not (self.tls_done and c[0].name == "STLS")]
        for command in self.choose.draw(st.sampled_from(options)):
            conn.send(command)


@settings(max_examples=600, deadline=None)
@given(greet=st.sampled_from([b"+OK ready <1.2@x>\r\n", b""]), rest=STREAM,
       cuts=st.lists(st.integers(0, 5000), max_size=12), max_line=st.sampled_from([8, 64, 4096]),
       choose=st.data())
def test_any_byte_stream_gives_events_or_remote_protocol_errors(
    greet: bytes, rest: bytes, cuts: list[int], max_line: int, choose: st.DataObject
) -> None:
    stream = greet + rest
    conn = Connection(max_line=max_line)
    client = _Client(conn, choose)
    positions = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    try:
        for a, b in itertools.pairwise(positions):
            conn.receive_data(stream[a:b])
            _drain(conn, client)
        conn.receive_data(b"")
        _drain(conn, client)
    except RemoteProtocolError:
        assert conn.state is State.ERROR


def _drain(conn: Connection, client: _Client) -> None:
    while (event := conn.next_event()) is not NEED_DATA:
        assert isinstance(event, Greeting | Ok | Err | Data | End | Continue | Closed)
        if isinstance(event, Closed):
            return
        if isinstance(event, Data):
            assert event.data.endswith(b"\n") or len(event.data) >= conn.max_line
            continue
        client.react(event)

"""Coverage-guided fuzzing of the POP3 codec with atheris (manual; not collected by pytest).

Run:  .venv/bin/pip install atheris && .venv/bin/python tests/pop3/fuzz_codec.py -max_total_time=60

The property: any server byte stream, cut anywhere, yields events or raises a
popkeep RemoteProtocolError; any other exception is a bug atheris reports.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

with atheris.instrument_imports():
    from popkeep.errors import RemoteProtocolError
    from popkeep.pop3.codec import NEED_DATA, Closed, Command, Connection, End, Err, Ok, State

NEXT = {
    State.AUTHORIZATION: Command("USER", "u"),
    State.USER_ACCEPTED: Command("PASS", "p"),
    State.TRANSACTION: Command("RETR", "1"),
}


def one_input(data: bytes) -> None:
    cut = data[0] if data else 0
    stream = b"+OK hi\r\n+OK\r\n+OK\r\n" + data[1:]
    conn = Connection(max_line=256)
    try:
        for piece in (stream[:cut], stream[cut:], b""):
            conn.receive_data(piece)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, Ok | Err | End) and conn.pending == 0:
                    follow_up = NEXT.get(conn.state)
                    if follow_up is not None:
                        conn.send(follow_up)
                if isinstance(event, Closed) or conn.state is State.CLOSED:
                    return
    except RemoteProtocolError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

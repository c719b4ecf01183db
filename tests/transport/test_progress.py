"""The progress rule of transport.tcp: a minimum rate over a window of waiting, so a
server that trickles or keeps stalling just short of the read timeout is cut (issue 16
item 3). Over real sockets on 127.0.0.1, with the stream on a loop and in blocking mode."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from popkeep.cli.quick.poll import drive
from popkeep.errors import LimitExceeded
from popkeep.transport.loopless import open_tcp_loopless as open_tcp  # on a loop: tcp's
from popkeep.transport.tcp import Progress, TCPStream

RECORDS = [  # (octets, seconds waited) read in turn → whether the rule is broken
    ([(10, 5.0), (10, 0.4), (10, 0.4)], False),  # think time before the first octet is free
    ([(10, 0.0), (1, 0.5), (1, 0.5)], True),  # 12 octets in 1 s of waiting: too slow
    ([(10, 0.0), (1000, 0.5), (1000, 0.5)], False),  # 2010 octets in 1 s: fast enough
    ([(10, 0.0)] + [(1, 0.1)] * 9, False),  # not a whole window of waiting yet
]


@pytest.mark.parametrize(("reads", "broken"), RECORDS)
def test_rule(reads: list[tuple[int, float]], broken: bool) -> None:
    rule = Progress(min_rate=1000, window=1.0)
    with contextlib.ExitStack() as stack:
        if broken:
            stack.enter_context(pytest.raises(LimitExceeded, match="too slow"))
        for octets, waited in reads:
            rule.record(octets, waited)


def test_a_command_starts_a_new_exchange() -> None:
    rule = Progress(min_rate=1000, window=1.0)
    rule.record(10, 0.0)
    rule.record(1, 0.9)
    rule.restart()
    rule.record(10, 0.0)
    rule.record(1, 0.9)  # 0.9 s in this exchange: not judged yet


@contextlib.contextmanager
def trickler(delay: float, think: float = 0.0) -> Iterator[int]:
    """A server that waits ``think`` seconds, then sends one octet per ``delay`` forever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            stop.wait(think)
            while not stop.wait(delay):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


async def read_until_cut(port: int) -> float:
    stream: TCPStream = await open_tcp("127.0.0.1", port, tls=None, connect_timeout=5,
                                       read_timeout=5, progress=Progress(200, 0.5))
    began = time.monotonic()
    try:
        await stream.write(b"RETR 1\r\n")
        with pytest.raises(LimitExceeded, match="too slow"):
            while await stream.read(1024, 5):
                pass
    finally:
        await stream.close()
    return time.monotonic() - began


@pytest.mark.parametrize("mode", ["loop", "blocking"])
def test_trickling_server_is_cut_within_a_window(mode: str) -> None:
    # 100 octets/s, every read a success well within the read timeout: only the
    # progress rule ends it, about half a second after the first octet.
    with trickler(0.01, think=0.3) as port:
        took = asyncio.run(read_until_cut(port)) if mode == "loop" else drive(read_until_cut(port))
    assert 0.7 < took < 3


def test_a_fast_reply_after_long_thinking_passes() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(100)
            time.sleep(0.8)  # the server thinks (a large mailbox opening)
            conn.sendall(b"y" * 300_000)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def main() -> int:
        stream = await open_tcp("127.0.0.1", listener.getsockname()[1], tls=None,
                                connect_timeout=5, read_timeout=5, progress=Progress(200, 0.5))
        await stream.write(b"UIDL\r\n")
        got = 0
        while chunk := await stream.read(4096, 5):
            got += len(chunk)
        await stream.close()
        return got

    try:
        assert drive(main()) == 300_000
    finally:
        thread.join(5)
        listener.close()

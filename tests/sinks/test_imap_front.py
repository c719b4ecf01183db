"""The IMAP relay of the sink tests itself: its teardown must not cost the suite time."""

from __future__ import annotations

import socket
import time

from .imap_front import ImapFront


def test_close_returns_at_once_with_a_connection_open() -> None:
    """A thread blocked in ``accept()`` is woken by close(), not waited for (was 5 s each)."""
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        front = ImapFront(upstream.getsockname()[:2])
        with socket.create_connection(("127.0.0.1", front.port)) as client:
            relayed, _ = upstream.accept()
            with relayed:
                relayed.sendall(b"* OK ready\r\n")  # both relay threads run: the accept
                assert client.recv(64) == b"* OK ready\r\n"  # thread is back in accept()
                started = time.monotonic()
                front.close()
                elapsed = time.monotonic() - started
                assert client.recv(1) == b""  # the relay cut the client too
    assert elapsed < 1.0, f"close() took {elapsed:.1f} s"

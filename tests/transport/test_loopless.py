"""The transport works one way: transport.tcp's stream is asyncio only; the stream that
blocks until a loop runs (the cron edge's) is transport.loopless, which only
popkeep.cli.quick imports (an import-linter contract, tests/test_architecture.py)."""

from __future__ import annotations

import ast
import asyncio
import socket
from pathlib import Path

import pytest

import popkeep
from popkeep.cli.quick.poll import drive
from popkeep.transport.loopless import LooplessStream, open_tcp_loopless
from popkeep.transport.tcp import TCPStream, open_tcp

TCP = Path(popkeep.__file__).parent / "transport" / "tcp.py"
#: socket calls that block (or choose blocking mode): none belongs in transport.tcp
BLOCKING = {"sendall", "recv", "settimeout", "create_connection", "setblocking"}


def test_the_ordinary_stream_makes_no_blocking_socket_call() -> None:
    called = {node.func.attr for node in ast.walk(ast.parse(TCP.read_text()))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}  # fmt: skip
    assert called & BLOCKING == set()
    assert "running_loop" not in TCP.read_text()  # it never asks which mode it is in


def test_the_ordinary_stream_needs_a_running_loop() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(RuntimeError, match="no running event loop"):
            drive(open_tcp("127.0.0.1", port, tls=None, connect_timeout=2, read_timeout=2))

        async def on_a_loop() -> TCPStream:
            stream = await open_tcp("127.0.0.1", port, tls=None, connect_timeout=2,
                                    read_timeout=2)
            await stream.close()
            return stream

        assert type(asyncio.run(on_a_loop())) is TCPStream


def test_the_loopless_opener_blocks_without_a_loop_and_is_tcp_inside_one() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        stream = drive(open_tcp_loopless("127.0.0.1", port, tls=None, connect_timeout=2,
                                         read_timeout=2))
        assert isinstance(stream, LooplessStream) and stream._loop is None
        drive(stream.close())

        async def on_a_loop() -> TCPStream:
            opened = await open_tcp_loopless("127.0.0.1", port, tls=None, connect_timeout=2,
                                             read_timeout=2)
            await opened.close()
            return opened

        assert type(asyncio.run(on_a_loop())) is TCPStream

"""A relay in front of the test Dovecot's plain IMAP port, for what Dovecot won't do on cue.

Everything passes through unchanged, except:

- ``max_append``: an APPEND whose literal is larger is answered ``NO [TOOBIG]``
  by the relay itself and never reaches Dovecot, as a provider with a message
  size limit answers (RFC 5530 §3 TOOBIG);
- :meth:`ImapFront.swallow_next_append_reply`: the next APPEND reaches Dovecot,
  which stores the message, but its tagged reply is withheld and the connection
  stalls, so the client times out not knowing whether the message was stored;
  with ``then_refuse``, later connections are closed at once (the link is down)
  until :meth:`ImapFront.reopen`.

Literals (RFC 3501 §4.3, ``{n}`` at the end of a line) are relayed as raw bytes,
so message text is never mistaken for commands or replies.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPEND = re.compile(rb"^(\S+) APPEND ", re.IGNORECASE)


class _Lines:
    """Line reader over a socket that can also hand out exactly ``n`` raw bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _more(self) -> bool:
        try:
            data = self._sock.recv(65536)
        except OSError:
            return False
        self._buffer += data
        return bool(data)

    def line(self) -> bytes | None:
        while b"\n" not in self._buffer:
            if not self._more():
                return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def raw(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            if not self._more():
                return None
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data


class ImapFront:
    """Listens on 127.0.0.1; relays each connection to ``upstream`` (see the module doc)."""

    def __init__(self, upstream: tuple[str, int], max_append: int | None = None) -> None:
        self.upstream = upstream
        self.max_append = max_append
        self.refused = 0  #: APPENDs answered NO [TOOBIG]
        self.appends = 0  #: APPENDs passed to Dovecot
        self.swallowed = threading.Event()  #: set once a withheld reply was due
        self._swallow = self._then_refuse = self._refusing = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def swallow_next_append_reply(self, then_refuse: bool = False) -> None:
        with self._lock:
            self._swallow = True
            self._then_refuse = then_refuse

    def reopen(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        """Stop accepting and cut every relayed connection; returns at once.

        Closing a listening socket does not wake a thread blocked in ``accept()``
        on Linux; shutting it down does (``accept`` fails with EINVAL), so the
        accept thread ends before :meth:`close` returns instead of holding it for
        the join's timeout.
        """
        _shut(self._listener)
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
        self._thread.join(5)

    def __enter__(self) -> ImapFront:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _shut(client)
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            tags: set[bytes] = set()
            for target, args in ((self._from_client, (client, server, tags)),
                                 (self._from_server, (server, client, tags))):
                threading.Thread(target=target, args=args, daemon=True).start()

    def _from_client(self, client: socket.socket, server: socket.socket, tags: set[bytes]) -> None:
        lines = _Lines(client)
        while (line := lines.line()) is not None:
            literal = _LITERAL.search(line)
            append = _APPEND.match(line)
            if append and literal and self.max_append is not None and (
                int(literal.group(1)) > self.max_append
            ):
                self.refused += 1
                _send(client, append.group(1) + b" NO [TOOBIG] Message too large\r\n")
                continue
            if append:
                self.appends += 1
                with self._lock:
                    if self._swallow:
                        self._swallow = False
                        tags.add(append.group(1))
            if not _send(server, line):
                break
            if literal and not _relay_raw(lines, server, int(literal.group(1))):
                break
        _shut(server)

    def _from_server(self, server: socket.socket, client: socket.socket, tags: set[bytes]) -> None:
        lines = _Lines(server)
        while (line := lines.line()) is not None:
            tag = line.split(b" ", 1)[0]
            if tag in tags:
                with self._lock:
                    self._refusing = self._then_refuse
                self.swallowed.set()  # Dovecot committed; the client never hears of it
                _drain(lines)
                break
            if not _send(client, line):
                break
            literal = _LITERAL.search(line)
            if literal and not _relay_raw(lines, client, int(literal.group(1))):
                break
        _shut(client)


def _relay_raw(lines: _Lines, target: socket.socket, count: int) -> bool:
    data = lines.raw(count)
    return data is not None and _send(target, data)


def _drain(lines: _Lines) -> None:
    """Read and drop until the peer closes (the client gave up and hung up)."""
    while lines.line() is not None:
        pass


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()

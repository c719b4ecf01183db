#!/usr/bin/env python3
"""The raw reference: the ceiling set by the server and the disk.

A deliberately minimal POP3 fetcher, not a product: one socket (TLS optional,
verified against a CA file), USER/PASS, UIDL, then every RETR pipelined over the
same socket with a bounded window (RFC 2449 §6.6 PIPELINING; Dovecot advertises
it), responses read in large chunks, each message dot-unstuffed (RFC 1939 §3) and
written CRLF→LF into a Maildir (tmp/ → new/), and ONE ``syncfs`` of the Maildir's
file system at the end (``os.sync`` where ``syncfs`` is missing). Keep mode: it
never sends DELE. With ``--state FILE`` it remembers fetched UIDLs (one per
line, appended after the sync) so a second run fetches only what is new.

Streams: a message is never held whole in memory; the receive buffer is cut
after its last complete line and written as it arrives.

Usage::

    raw_reference.py --host 127.0.0.1 --port 110 --user alice --maildir DIR \
        [--tls --ca-file ca.pem] [--state uidls] [--window 64]  # password: $BENCH_PASS
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable

CHUNK = 1 << 20
TERMINATOR = b"\r\n.\r\n"


class Pop3Error(RuntimeError):
    """The server said -ERR, or closed the connection."""


class Conn:
    """A socket with a receive buffer read in large chunks.

    ``buf[pos:]`` is the unread data; the buffer is compacted only when more data
    is read, so handing out many small messages from one chunk copies nothing.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def fill(self) -> None:
        data = self.sock.recv(CHUNK)
        if not data:
            raise Pop3Error("connection closed by server")
        self.buf = self.buf[self.pos :] + data
        self.pos = 0

    def line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos : end]
                self.pos = end + 2
                return line
            self.fill()

    def status(self) -> bytes:
        line = self.line()
        if not line.startswith(b"+OK"):
            raise Pop3Error(line.decode("latin-1"))
        return line

    def command(self, cmd: str) -> bytes:
        self.sock.sendall(cmd.encode("ascii") + b"\r\n")
        return self.status()

    def multiline_lines(self) -> list[bytes]:
        """Body of a short multi-line response (UIDL), as lines."""
        lines = []
        while (line := self.line()) != b".":
            lines.append(line[1:] if line.startswith(b"..") else line)
        return lines

    def stream_body(self, write: Callable[[bytes], object]) -> None:
        """Pass one multi-line body, unstuffed and CRLF→LF, to ``write``.

        Invariant: ``pos`` always sits at the beginning of a line, because the
        buffer is only ever consumed up to right after a CRLF.
        """
        while True:
            buf, pos = self.buf, self.pos
            if buf.startswith(b".\r\n", pos):
                self.pos = pos + 3
                return
            end = buf.find(TERMINATOR, pos)
            if end >= 0:
                write(_unstuff(buf[pos : end + 2]))
                self.pos = end + 5
                return
            cut = buf.rfind(b"\r\n", pos)
            if cut >= 0:
                # Keep a possibly partial terminator line in the buffer.
                write(_unstuff(buf[pos : cut + 2]))
                self.pos = cut + 2
            self.fill()


def _unstuff(chunk: bytes) -> bytes:
    """Dot-unstuff whole lines (RFC 1939 §3) and turn CRLF into LF."""
    if chunk.startswith(b".."):
        chunk = chunk[1:]
    return chunk.replace(b"\r\n..", b"\r\n.").replace(b"\r\n", b"\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def connect(args: argparse.Namespace) -> Conn:
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    if args.tls:
        ctx = ssl.create_default_context(cafile=args.ca_file)
        sock = ctx.wrap_socket(sock, server_hostname=args.host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return Conn(sock)


def login(conn: Conn, user: str, password: str) -> None:
    conn.status()  # greeting
    conn.command(f"USER {user}")
    conn.command(f"PASS {password}")


def list_uidls(conn: Conn) -> list[tuple[int, bytes]]:
    conn.command("UIDL")
    out = []
    for line in conn.multiline_lines():
        num, uid = line.split(b" ", 1)
        out.append((int(num), uid))
    return out


class MaildirWriter:
    """Unique names; write into tmp/, rename into new/ (Maildir convention)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.tmp = os.path.join(root, "tmp")
        self.new = os.path.join(root, "new")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.prefix = f"{int(time.time())}.P{os.getpid()}Q"
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")
        self.count = 0

    def deliver(self, conn: Conn) -> None:
        self.count += 1
        name = f"{self.prefix}{self.count}.{self.host}"
        tmp_path = os.path.join(self.tmp, name)
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            conn.stream_body(lambda data: _write_all(fd, data))
        finally:
            os.close(fd)
        os.rename(tmp_path, os.path.join(self.new, name))

    def sync(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) != 0:
                os.sync()
        except (OSError, AttributeError):
            os.sync()
        finally:
            os.close(fd)


def fetch_all(conn: Conn, numbers: list[int], writer: MaildirWriter, window: int) -> None:
    """Pipeline RETR with at most ``window`` commands outstanding."""
    sent = 0
    for done in range(len(numbers)):
        if sent < len(numbers) and sent - done < window:
            upto = min(len(numbers), done + window)
            conn.sock.sendall(b"".join(b"RETR %d\r\n" % n for n in numbers[sent:upto]))
            sent = upto
        conn.status()
        writer.deliver(conn)


def load_state(path: str | None) -> set[bytes]:
    """UIDLs already fetched (one per line), if ``--state`` is given."""
    if not path or not os.path.exists(path):
        return set()
    with open(path, "rb") as f:
        return set(f.read().split(b"\n"))


def save_state(path: str, uids: list[bytes]) -> None:
    """Append the new UIDLs; written after the messages are synced."""
    with open(path, "ab") as f:
        f.write(b"".join(uid + b"\n" for uid in uids))
        f.flush()
        os.fsync(f.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--tls", action="store_true", help="implicit TLS (POP3S)")
    parser.add_argument("--ca-file")
    parser.add_argument("--state", help="file of fetched UIDLs (enables the no-op poll)")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    password = os.environ.get("BENCH_PASS")
    if password is None:
        parser.error("set BENCH_PASS")
    conn = connect(args)
    login(conn, args.user, password)
    known = load_state(args.state)
    new = [(num, uid) for num, uid in list_uidls(conn) if uid not in known]
    writer = MaildirWriter(args.maildir)
    fetch_all(conn, [num for num, _uid in new], writer, args.window)
    conn.command("QUIT")
    conn.sock.close()
    writer.sync()
    if args.state and new:
        save_state(args.state, [uid for _num, uid in new])
    print(f"raw_reference: {writer.count} messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

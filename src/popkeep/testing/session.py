"""One POP3 connection of the scripted server: command dispatch and replies.

Owns the per-connection state machine of RFC 1939 (AUTHORIZATION →
TRANSACTION → UPDATE at QUIT), with RFC 2449 CAPA, RFC 2595 STLS, RFC 5034
AUTH (PLAIN, XOAUTH2, OAUTHBEARER) and APOP, driven by one dispatch table. Commands are read and
answered strictly in order, so pipelined clients (RFC 2449 §6.6) work.
Scripted faults are asked of :mod:`popkeep.testing.misbehaviour`; listening,
TLS contexts and the session registry belong to
:mod:`popkeep.testing.server`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from popkeep.testing.mailbox import MailboxEntry, stuff, stuff_chunks, top_of
from popkeep.testing.misbehaviour import (
    RetrAction,
    listing_line,
    retr_action,
    shown_size,
    shown_uid,
)

if TYPE_CHECKING:
    from popkeep.testing.server import ScriptedPOP3Server

State = Literal["authorization", "transaction"]
_CLOSE_TIMEOUT = 2.0


@dataclass
class SessionLog:
    """What one connection received and what it committed."""

    number: int
    tls: bool = False  #: TLS was active when the session ended
    lines: list[bytes] = field(default_factory=list)  #: every line received, no EOL
    plaintext_lines: list[bytes] = field(default_factory=list)  #: those before TLS
    user: str | None = None  #: set once a login succeeded
    retrieved: list[str] = field(default_factory=list)  #: uids RETR sent in full
    deleted: list[str] = field(default_factory=list)  #: uids this session's QUIT removed
    quit: bool = False  #: QUIT was answered +OK
    closed: bool = False  #: the connection is over


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close ``writer`` and wait briefly; errors of a dying connection are ignored."""
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(writer.wait_closed(), _CLOSE_TIMEOUT)


Handler = Callable[["Session", bytes], Awaitable[bool]]
_AUTH: frozenset[State] = frozenset({"authorization"})
_TRANS: frozenset[State] = frozenset({"transaction"})
_ANY: frozenset[State] = _AUTH | _TRANS


class Session:
    """One connection: reads command lines in order, answers each (pipelining-safe).

    Handlers return True when the session must end (QUIT, or a scripted drop).
    """

    def __init__(
        self, server: ScriptedPOP3Server, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, record: SessionLog,
    ) -> None:
        self.server, self.mis, self.record = server, server.misbehave, record
        self.reader, self.writer = reader, writer
        self.state: State = "authorization"
        self.tls = server.implicit_tls
        self.user: bytes | None = None
        self.entries: tuple[MailboxEntry, ...] = ()
        self.marked: set[int] = set()
        self.timestamp = f"<{record.number}.{secrets.token_hex(6)}@pop.example.com>".encode()

    async def run(self) -> None:
        if self.mis.silent:
            while await self.reader.read(65536):
                pass
            return
        greeting = self.mis.greeting or b"+OK POP3 ready" + (
            b" " + self.timestamp if self.server.apop else b"")
        await self.send(greeting + b"\r\n")
        while (line := await self.readline()) is not None:
            if await self.dispatch(line):
                return

    async def readline(self) -> bytes | None:
        """The next command line without its EOL, recorded; None at EOF or overflow."""
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            await self.send(b"-ERR line too long\r\n")
            return None
        line = raw.rstrip(b"\r\n")
        self.record.lines.append(line)
        if not self.tls:
            self.record.plaintext_lines.append(line)
        return line

    async def dispatch(self, line: bytes) -> bool:
        verb, _, arg = line.partition(b" ")
        entry = _COMMANDS.get(verb.upper())
        if entry is None:
            return await self.err(b"unknown command")
        handler, states = entry
        if self.state not in states:
            return await self.err(b"command not valid in this state")
        return await handler(self, arg)

    async def send(self, data: bytes) -> None:
        if self.mis.bare_lf:
            data = data.replace(b"\r\n", b"\n")
        if self.mis.trickle_delay is None:
            self.writer.write(data)
            await self.writer.drain()
            # drain() does not suspend while the transport's buffer is low, and once
            # the client is gone a TLS transport drops writes without ever filling it:
            # yield, so the scheduled connection_lost runs and the next drain() raises.
            # Without this an endless RETR spun forever, starving every other session.
            await asyncio.sleep(0)
            return
        for i in range(len(data)):
            self.writer.write(data[i : i + 1])
            await self.writer.drain()
            await asyncio.sleep(self.mis.trickle_delay)

    async def ok(self, text: bytes = b"") -> bool:
        await self.send(b"+OK " + text + b"\r\n" if text else b"+OK\r\n")
        return False

    async def err(self, text: bytes) -> bool:
        await self.send(b"-ERR " + text + b"\r\n")
        return False

    def pick(self, arg: bytes) -> tuple[int, MailboxEntry] | bytes:
        """The message named by ``arg``, or the -ERR text (RFC 1939 §5)."""
        try:
            number = int(arg.split()[0]) if arg.strip() else 0
        except ValueError:
            return b"invalid message number"
        if not 1 <= number <= len(self.entries):
            return b"no such message"
        if number in self.marked:
            return b"message %d already deleted" % number
        return number, self.entries[number - 1]

    def live(self) -> list[tuple[int, MailboxEntry]]:
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.marked]

    # ------------------------------------------------ authorization (RFC 1939 §4)

    async def capa(self, _arg: bytes) -> bool:
        """RFC 2449 §5: the capability list for the current state."""
        if self.mis.no_capa:
            return await self.err(b"unknown command")
        caps = ["USER", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE",
                "SASL " + " ".join(self.server.sasl)]
        if not self.mis.no_top:
            caps.insert(0, "TOP")
        if not self.mis.no_uidl:
            caps.append("UIDL")
        if self.server.stls and not self.tls and self.state == "authorization":
            caps.append("STLS")
        caps += ["IMPLEMENTATION popkeep-scripted", *self.server.capabilities]
        body = "".join(f"{c}\r\n" for c in caps).encode("ascii")
        await self.send(b"+OK Capability list follows\r\n" + body + b".\r\n")
        return False

    async def user_(self, arg: bytes) -> bool:
        self.user = arg
        return await self.ok(b"send PASS")

    async def pass_(self, arg: bytes) -> bool:
        if self.user is None:
            return await self.err(b"USER first")
        return await self.login(self.user, hmac.compare_digest(arg, self.server.password.encode()))

    async def apop(self, arg: bytes) -> bool:
        """RFC 1939 §7 APOP: MD5 of the greeting's timestamp and the secret."""
        name, _, digest = arg.partition(b" ")
        if not self.server.apop:
            return await self.err(b"APOP not supported")
        expected = hashlib.md5(self.timestamp + self.server.password.encode()).hexdigest()  # noqa: S324
        return await self.login(name, hmac.compare_digest(digest.lower(), expected.encode()))

    async def auth(self, arg: bytes) -> bool:
        """RFC 5034 AUTH, with an initial response or after a "+ " continuation:
        PLAIN always; XOAUTH2 and OAUTHBEARER when the server offers them, with the
        server's password as the one valid bearer token."""
        mechanism, _, response = arg.partition(b" ")
        offered = [m.encode() for m in self.server.sasl]
        if not mechanism:
            return await self.send_lines(b"+OK mechanisms follow", offered)
        check = _SASL.get(mechanism.upper())
        if check is None or mechanism.upper() not in offered:
            return await self.err(b"unsupported mechanism")
        if not response:
            await self.send(b"+ \r\n")
            line = await self.readline()
            if line is None:
                return True
            response = line
        if response == b"*":
            return await self.err(b"authentication cancelled")
        try:
            decoded = base64.b64decode(response, validate=True)
        except binascii.Error:
            return await self.err(b"malformed response")
        return await check(self, decoded)

    async def check_plain(self, decoded: bytes) -> bool:
        """RFC 4616: authzid NUL authcid NUL passwd."""
        try:
            _authz, user, password = decoded.split(b"\0")
        except ValueError:
            return await self.err(b"malformed PLAIN response")
        return await self.login(user, hmac.compare_digest(password, self.server.password.encode()))

    async def check_xoauth2(self, decoded: bytes) -> bool:
        """``user=U^Aauth=Bearer T^A^A``; a bad token: the JSON error challenge,
        the client's (empty) answer, then -ERR (Google's and Microsoft's exchange)."""
        fields = dict(f.partition(b"=")[::2] for f in decoded.rstrip(b"\x01").split(b"\x01"))
        return await self.bearer(fields.get(b"user", b""), fields.get(b"auth", b""))

    async def check_oauthbearer(self, decoded: bytes) -> bool:
        """RFC 7628 §3.1: ``n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A``."""
        gs2, _, rest = decoded.partition(b"\x01")
        authzid = next((p[2:] for p in gs2.split(b",") if p.startswith(b"a=")), b"")
        user = authzid.replace(b"=2C", b",").replace(b"=3D", b"=")
        fields = dict(f.partition(b"=")[::2] for f in rest.rstrip(b"\x01").split(b"\x01"))
        return await self.bearer(user, fields.get(b"auth", b""))

    async def bearer(self, user: bytes, auth: bytes) -> bool:
        token = self.server.password.encode()
        if hmac.compare_digest(auth, b"Bearer " + token):
            return await self.login(user, True)
        # RFC 7628 §3.2.2: the error as a challenge; the client's answer ends it.
        error = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
        await self.send(b"+ " + base64.b64encode(error) + b"\r\n")
        if await self.readline() is None:
            return True
        return await self.err(b"[AUTH] Authentication failed")

    async def login(self, user: bytes, password_ok: bool) -> bool:
        if self.mis.auth_error is not None:
            return await self.err(self.mis.auth_error)
        if user != self.server.user.encode() or not password_ok:
            return await self.err(b"[AUTH] invalid user name or password")
        # RFC 1939 §4: the maildrop is fixed at login; numbers stay valid for the session.
        self.entries = self.server.mailbox.snapshot()
        self.state = "transaction"
        self.record.user = user.decode(errors="replace")
        self.server.changed()
        return await self.ok(b"%d messages" % len(self.entries))

    async def stls(self, _arg: bytes) -> bool:
        """RFC 2595 §4: answer +OK, then hand the stream to the TLS handshake."""
        context = self.server.tls_context
        if not self.server.stls or self.tls or context is None:
            return await self.err(b"STLS not available")
        if self.mis.stls_refused:
            return await self.err(b"[SYS/TEMP] TLS not available right now")
        reply = b"+OK Begin TLS negotiation\r\n"
        if self.mis.stls_inject:  # CVE-2021-39272 class: plaintext sent after the +OK
            reply += b"+OK injected\r\n"
        await self.send(reply)
        await self.writer.start_tls(context)
        self.tls = self.record.tls = True
        return False

    # ------------------------------------------------ transaction (RFC 1939 §5)

    async def stat(self, _arg: bytes) -> bool:
        live = self.live()
        octets = sum(shown_size(self.mis, e.size) for _, e in live)
        return await self.ok(b"%d %d" % (len(live), octets))

    async def list_(self, arg: bytes) -> bool:
        return await self.listing(arg, lambda n, e: b"%d" % shown_size(self.mis, e.size),
                                  omit=self.mis.list_omits)

    async def uidl(self, arg: bytes) -> bool:
        if self.mis.no_uidl:
            return await self.err(b"unknown command")
        session = self.record.number
        return await self.listing(arg, lambda n, e: shown_uid(self.mis, n, e.uid, session),
                                  extra=self.mis.extra_uidl_lines)

    async def listing(
        self, arg: bytes, value: Callable[[int, MailboxEntry], bytes],
        omit: frozenset[int] = frozenset(), extra: tuple[bytes, ...] = (),
    ) -> bool:
        if arg.strip():
            picked = self.pick(arg)
            if isinstance(picked, bytes):
                return await self.err(picked)
            number, entry = picked
            if number in omit:
                return await self.err(b"no such message")
            if self.mis.malformed_listings:
                return await self.ok(b"garbage")
            return await self.ok(b"%d %s" % (number, value(number, entry)))
        if self.mis.endless_listing:
            return await self.listing_endless()
        lines = [listing_line(self.mis, i, n, value(n, e))
                 for i, (n, e) in enumerate(self.live()) if n not in omit]
        lines += [line + b"\r\n" for line in extra]
        await self.send(b"+OK listing follows\r\n" + b"".join(lines) + b".\r\n")
        return False

    async def send_lines(self, status: bytes, lines: list[bytes]) -> bool:
        await self.send(status + b"\r\n" + b"".join(x + b"\r\n" for x in lines) + b".\r\n")
        return False

    async def retr(self, arg: bytes) -> bool:
        picked = self.pick(arg)
        if isinstance(picked, bytes):
            return await self.err(picked)
        number, entry = picked
        action = retr_action(self.mis, number)
        if action is not None:
            return await _RETR_ACTIONS[action](self, entry)
        status = b"+OK %d octets\r\n" % entry.size
        if entry.data is not None:
            await self.send(status + stuff(entry.data))
        else:
            await self.send(status)
            for chunk in stuff_chunks(entry.chunks()):
                await self.send(chunk)
        self.record.retrieved.append(entry.uid)
        return False

    async def top(self, arg: bytes) -> bool:
        if self.mis.no_top:
            return await self.err(b"unknown command")
        fields = arg.split()
        if len(fields) != 2 or not fields[1].isdigit():
            return await self.err(b"usage: TOP msg n")
        picked = self.pick(fields[0])
        if isinstance(picked, bytes):
            return await self.err(picked)
        head = top_of(picked[1].chunks(), int(fields[1]))
        await self.send(b"+OK top of message follows\r\n" + stuff(head))
        return False

    async def dele(self, arg: bytes) -> bool:
        picked = self.pick(arg)
        if isinstance(picked, bytes):
            return await self.err(picked)
        if picked[0] in self.mis.refuse_dele:  # e.g. another session expunged it meanwhile
            return await self.err(b"message %d expunged" % picked[0])
        self.marked.add(picked[0])
        await self.ok(b"message %d deleted" % picked[0])
        return self.mis.drop_after_dele

    async def rset(self, _arg: bytes) -> bool:
        self.marked.clear()
        return await self.ok(b"%d messages" % len(self.entries))

    async def noop(self, _arg: bytes) -> bool:
        return await self.ok()

    async def quit(self, _arg: bytes) -> bool:
        """RFC 1939 §6: QUIT in TRANSACTION enters UPDATE and removes marked messages."""
        if self.state == "transaction":
            if self.mis.drop_before_quit_reply:
                return True
            uids = [self.entries[n - 1].uid for n in sorted(self.marked)]
            self.record.deleted = self.server.mailbox.commit_deletions(uids)
        self.record.quit = True
        await self.ok(b"bye")
        return True

    # ------------------------------------------------ scripted RETR faults

    async def retr_drop(self, entry: MailboxEntry) -> bool:
        """Send the status line and the first k octets of the message, then close."""
        assert self.mis.drop_in_retr is not None
        partial = stuff(b"".join(entry.chunks()))[: self.mis.drop_in_retr[1]]
        await self.send(b"+OK %d octets\r\n" % entry.size + partial)
        return True

    async def retr_huge_line(self, entry: MailboxEntry) -> bool:
        """One line of ``huge_line_size`` octets without a newline, in 1 MB writes."""
        await self.send(b"+OK %d octets\r\n" % entry.size)
        left, block = self.mis.huge_line_size, b"A" * (1 << 20)
        while left > 0:
            await self.send(block[: min(left, len(block))])
            left -= len(block)
        await self.send(b"\r\n.\r\n")
        return False

    async def listing_endless(self) -> bool:
        """A UIDL / LIST response that keeps going until the client goes away."""
        await self.send(b"+OK listing follows\r\n")
        number = 0
        while not self.writer.is_closing():
            batch = range(number + 1, number + 1001)
            await self.send(b"".join(b"%d uid-%d\r\n" % (n, n) for n in batch))
            number += 1000
        return True

    async def retr_endless(self, entry: MailboxEntry) -> bool:
        """Keep sending lines until the client goes away (or the server stops)."""
        await self.send(b"+OK %d octets\r\n" % entry.size)
        batch = b"".join(b"line %04d of a message that never ends\r\n" % i for i in range(1000))
        while not self.writer.is_closing():
            await self.send(batch)
        return True


_COMMANDS: dict[bytes, tuple[Handler, frozenset[State]]] = {
    b"CAPA": (Session.capa, _ANY),
    b"USER": (Session.user_, _AUTH),
    b"PASS": (Session.pass_, _AUTH),
    b"APOP": (Session.apop, _AUTH),
    b"AUTH": (Session.auth, _AUTH),
    b"STLS": (Session.stls, _AUTH),
    b"STAT": (Session.stat, _TRANS),
    b"LIST": (Session.list_, _TRANS),
    b"UIDL": (Session.uidl, _TRANS),
    b"RETR": (Session.retr, _TRANS),
    b"TOP": (Session.top, _TRANS),
    b"DELE": (Session.dele, _TRANS),
    b"RSET": (Session.rset, _TRANS),
    b"NOOP": (Session.noop, _TRANS),
    b"QUIT": (Session.quit, _ANY),
}

_RETR_ACTIONS: dict[RetrAction, Callable[[Session, MailboxEntry], Awaitable[bool]]] = {
    "drop": Session.retr_drop,
    "huge_line": Session.retr_huge_line,
    "endless": Session.retr_endless,
}

_SASL: dict[bytes, Callable[[Session, bytes], Awaitable[bool]]] = {
    b"PLAIN": Session.check_plain,
    b"XOAUTH2": Session.check_xoauth2,
    b"OAUTHBEARER": Session.check_oauthbearer,
}

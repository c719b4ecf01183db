"""Sans-I/O POP3 client protocol: commands in → bytes out, bytes in → events out.

Owns: the client side of RFC 1939 (with RFC 2449 CAPA / response codes /
pipelining, RFC 2595 STLS and RFC 5034 AUTH), held in one state machine whose
every legal transition is listed in :data:`TRANSITIONS` below, plus the framing
of single-line and multi-line responses (dot-unstuffing, RFC 1939 §3) and the
octet stuffing a server does (:func:`stuff`, reused by the test server).
Must not: touch sockets, TLS, clocks or asyncio (import-linter enforces it),
decide policy (which mechanism to use, what -ERR means for the run), or log.

Usage (h11 style)::

    conn = Connection()
    conn.receive_data(greeting_bytes)
    conn.next_event()            # Greeting(...)
    wire = conn.send(Command("STAT"))
    conn.receive_data(b"+OK 2 320\\r\\n")
    conn.next_event()            # Ok(text="2 320", code=None)
    conn.next_event()            # NEED_DATA

Responses are matched to commands first-in first-out, so several commands may
be in flight (RFC 2449 §6.6 PIPELINING) as long as none of them changes the state.
After any error raised by :meth:`Connection.next_event` the connection is in
state ``ERROR`` and unusable.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import Final, Literal, NamedTuple

from popkeep.errors import LimitExceeded, LocalProtocolError, RemoteProtocolError, printable


class State(Enum):
    """Where the conversation is (RFC 1939 §3 states, plus framing sub-states)."""

    GREETING = "GREETING"  #: connected, waiting for the server's greeting
    AUTHORIZATION = "AUTHORIZATION"
    USER_ACCEPTED = "USER_ACCEPTED"  #: USER got +OK; PASS or QUIT may follow (RFC 1939 §7)
    TLS_PENDING = "TLS_PENDING"  #: STLS got +OK; the caller must handshake, then start_tls_done()
    TRANSACTION = "TRANSACTION"
    CLOSED = "CLOSED"  #: QUIT answered, or greeting was -ERR
    ERROR = "ERROR"  #: a protocol error happened; nothing more can be done


class Reply(Enum):
    """The shape of the response a command expects."""

    SINGLE = "single"  #: one status line
    MULTI = "multi"  #: status line; after +OK a dot-terminated body (RFC 1939 §3)
    SASL = "sasl"  #: status line, or "+ " continuations first (RFC 5034 §4)


_A, _U, _T = State.AUTHORIZATION, State.USER_ACCEPTED, State.TRANSACTION
_S, _M = Reply.SINGLE, Reply.MULTI

#: (state when sent, command) → (reply shape, state after +OK, state after -ERR).
#: LIST and UIDL with an argument take a single-line reply (RFC 1939 §5).
#: The greeting (GREETING → AUTHORIZATION / CLOSED) and the end of STLS
#: (TLS_PENDING → AUTHORIZATION via start_tls_done) are the only other transitions.
TRANSITIONS: Final[dict[tuple[State, str], tuple[Reply, State, State]]] = {
    (_A, "CAPA"): (_M, _A, _A),  # RFC 2449 §5
    (_A, "STLS"): (_S, State.TLS_PENDING, _A),  # RFC 2595 §4
    (_A, "USER"): (_S, _U, _A),  # RFC 1939 §7
    (_A, "APOP"): (_S, _T, _A),  # RFC 1939 §7
    (_A, "AUTH"): (Reply.SASL, _T, _A),  # RFC 5034 §4
    (_A, "QUIT"): (_S, State.CLOSED, State.CLOSED),
    (_U, "PASS"): (_S, _T, _A),
    (_U, "QUIT"): (_S, State.CLOSED, State.CLOSED),
    (_T, "STAT"): (_S, _T, _T),  # RFC 1939 §5
    (_T, "LIST"): (_M, _T, _T),
    (_T, "UIDL"): (_M, _T, _T),  # RFC 1939 §7
    (_T, "RETR"): (_M, _T, _T),
    (_T, "TOP"): (_M, _T, _T),
    (_T, "DELE"): (_S, _T, _T),
    (_T, "NOOP"): (_S, _T, _T),
    (_T, "RSET"): (_S, _T, _T),
    (_T, "CAPA"): (_M, _T, _T),
    (_T, "QUIT"): (_S, State.CLOSED, State.CLOSED),  # enters UPDATE (RFC 1939 §6)
}

#: command → (min args, max args, which argument positions are message numbers)
_ARITY: Final[dict[str, tuple[int, int, tuple[int, ...]]]] = {
    "USER": (1, 1, ()),
    "PASS": (1, 1, ()),
    "APOP": (2, 2, ()),
    "AUTH": (1, 2, ()),
    "LIST": (0, 1, (0,)),
    "UIDL": (0, 1, (0,)),
    "RETR": (1, 1, (0,)),
    "DELE": (1, 1, (0,)),
    "TOP": (2, 2, (0, 1)),
}
_SECRET_ARGS: Final = {"PASS": 0, "APOP": 1, "AUTH": 1}  # argument index masked in logs
MAX_COMMAND = 255  # RFC 2449 §4: a command line is at most 255 octets with CRLF
MAX_SINGLE_LINE = 4096  # RFC 2449 §4 allows 512; tolerate broken servers up to this
#: Bounds of a listing (UIDL, LIST) body: 2.5 times what a 200,000-message mailbox
#: sends (a UIDL line is at most 12 + 1 + 70 + 2 octets, RFC 1939 §7; typical ones
#: are 30–50). An endless listing ends in a LimitExceeded, not in memory growth.
MAX_LISTING_LINES = 500_000
MAX_LISTING_OCTETS = 48 << 20
#: CAPA (RFC 2449 §5) lists a dozen capabilities; a thousand lines is not a server.
MAX_CAPA_LINES = 1_000
MAX_CAPA_OCTETS = 64 << 10
_HIDDEN = "********"


class Command:
    """One POP3 command. ``str()`` and ``repr()`` mask secrets (the one logging choke point)."""

    __slots__ = ("args", "name")

    def __init__(self, name: str, *args: str) -> None:
        self.name = name.upper()
        self.args = args

    def __str__(self) -> str:
        secret = _SECRET_ARGS.get(self.name)
        shown = ["***" if i == secret else a for i, a in enumerate(self.args)]
        return " ".join([self.name, *shown])

    def __repr__(self) -> str:
        return f"Command({self})"


class SaslResponse:
    """A client line answering a SASL "+ " challenge (RFC 5034 §4); always masked."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return "*" if self.text == "*" else "***"

    def __repr__(self) -> str:
        return f"SaslResponse({self})"


class _Frozen:
    """Base of the event types: immutable value objects compared by type and fields.

    Hand-written rather than ``@dataclass(frozen=True)``: the dataclass code
    generation costs about a millisecond per class at import, and ``popkeep fetch``
    start-up time is measured (issue 5)."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.__class__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{self.__class__.__name__}({fields})"


_set = object.__setattr__


class Greeting(_Frozen):
    __slots__ = ("apop_timestamp", "text")
    text: str
    apop_timestamp: str | None  #: the "<...>" of RFC 1939 §7, if the server offers APOP

    def __init__(self, text: str, apop_timestamp: str | None) -> None:
        _set(self, "text", text)
        _set(self, "apop_timestamp", apop_timestamp)


class Ok(_Frozen):
    __slots__ = ("code", "text")
    text: str
    code: str | None  #: RFC 2449 §8 response code, upper-cased, without brackets

    def __init__(self, text: str, code: str | None = None) -> None:
        _set(self, "text", text)
        _set(self, "code", code)


class Err(_Frozen):
    __slots__ = ("argument", "code", "text")
    text: str
    code: str | None  #: e.g. "IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM", "AUTH"
    #: what some servers add inside the brackets after the code ("[LOGIN-DELAY 600]")
    argument: str | None

    def __init__(self, text: str, code: str | None = None, argument: str | None = None) -> None:
        _set(self, "text", text)
        _set(self, "code", code)
        _set(self, "argument", argument)


class Data(_Frozen):
    """A piece of a multi-line body: dot-unstuffed, ending on a line boundary ("\\n"),
    except that a message line longer than the connection's ``max_line`` is passed
    on in pieces (each at least ``max_line`` octets, the last one ending the line)."""

    __slots__ = ("data",)
    data: bytes

    def __init__(self, data: bytes) -> None:
        _set(self, "data", data)


class End(_Frozen):
    """The terminating "." line of a multi-line response."""

    __slots__ = ()


class Continue(_Frozen):
    """A SASL challenge ("+ text"); ``text`` is the base64 challenge, maybe empty."""

    __slots__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


class Closed(_Frozen):
    """The server closed the connection between responses."""

    __slots__ = ()


Event = Greeting | Ok | Err | Data | End | Continue | Closed


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _Sentinel.NEED_DATA
NeedData = Literal[_Sentinel.NEED_DATA]


class _Pending(NamedTuple):
    name: str
    reply: Reply
    on_ok: State
    on_err: State


#: RFC 2449 §8 "[CODE/SUB] text". Some servers add an argument inside the brackets
#: ("[LOGIN-DELAY 600]"); the code is the first word, the argument is kept apart
#: (:attr:`Err.argument`).
_CODE_RE = re.compile(r"\[([^\]\s]+)(?:\s([^\]]*))?\]\s*")
_TIMESTAMP_RE = re.compile(rb"<[\x21-\x3b\x3d\x3f-\x7e]+>")
_BAD_ARG = re.compile(r"[\r\n\x00]")


class _Buffer:
    """Received bytes not yet consumed: ``buf[pos:]`` followed by the chunks in ``more``.

    Chunks are merged only when ``buf[pos:]`` holds no complete line, and only
    up to the last line ending, so a body chunk is usually copied once (tail +
    chunk) and then handed out whole.
    """

    __slots__ = ("buf", "more", "pos")

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.more: list[bytes] = []

    def __len__(self) -> int:
        return len(self.buf) - self.pos + sum(map(len, self.more))

    def clear(self) -> None:
        self.buf, self.pos, self.more = b"", 0, []

    def _merge(self) -> None:
        pieces: list[bytes | memoryview] = [memoryview(self.buf)[self.pos :]]
        rest: list[bytes] = []
        for i in range(len(self.more) - 1, -1, -1):
            cut = self.more[i].rfind(b"\n") + 1
            if cut:
                last = self.more[i]
                pieces += self.more[:i]
                pieces.append(last if cut == len(last) else memoryview(last)[:cut])
                rest = ([last[cut:]] if cut < len(last) else []) + self.more[i + 1 :]
                break
        else:
            pieces += self.more
        pieces = [p for p in pieces if len(p)]
        only = pieces[0] if len(pieces) == 1 else None
        self.buf = only if isinstance(only, bytes) else b"".join(pieces)
        self.pos, self.more = 0, rest

    def take_line(self, limit: int) -> bytes | None:
        """The next line (without "\n") if it ends within ``limit`` octets, else None."""
        i = self.buf.find(b"\n", self.pos, self.pos + limit + 1)
        if i < 0 and self.more:
            self._merge()
            i = self.buf.find(b"\n", self.pos, self.pos + limit + 1)
        if i < 0:
            return None
        line = self.buf[self.pos : i]
        self.pos = i + 1
        return line

    def complete_lines(self) -> tuple[bytes, int, int] | None:
        """(buf, start, end): buf[start:end] is all complete lines available now, or None."""
        end = self.buf.rfind(b"\n", self.pos) + 1
        if not end and self.more:
            self._merge()
            end = self.buf.rfind(b"\n", self.pos) + 1
        return (self.buf, self.pos, end) if end else None


class Connection:
    """The client side of one POP3 connection. See the module docstring.

    ``max_line`` bounds the memory one line of a message (RETR, TOP) may hold: a
    longer line is passed on in pieces and stored intact (a message's size is the
    session's business: ``max_message_size``). Listings are bounded
    in lines and octets (``max_listing_lines`` / ``max_listing_octets`` for UIDL
    and LIST, :data:`MAX_CAPA_LINES` / :data:`MAX_CAPA_OCTETS` for CAPA), their
    lines and every status line to :data:`MAX_SINGLE_LINE` octets.

    Server text is untrusted: every text an event carries, and every excerpt of
    the server's bytes in an error, is decoded here (:meth:`text`) with each of
    ``secrets`` (the account's password) masked and control characters escaped
    (:func:`popkeep.errors.printable`), so no later output can show either.
    """

    def __init__(
        self,
        max_line: int = 1 << 20,
        *,
        secrets: Iterable[str] = (),
        max_listing_lines: int = MAX_LISTING_LINES,
        max_listing_octets: int = MAX_LISTING_OCTETS,
    ) -> None:
        self.max_line = max_line
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._body_limits: dict[str, tuple[int, int]] = {
            "CAPA": (MAX_CAPA_LINES, MAX_CAPA_OCTETS),
            "UIDL": (max_listing_lines, max_listing_octets),
            "LIST": (max_listing_lines, max_listing_octets),
        }
        self._body_bound: tuple[int, int] | None = None  # of the body being read
        self._body_lines = self._body_octets = 0
        self.state = State.GREETING
        self._buf = _Buffer()
        self._eof = False
        self._pending: deque[_Pending] = deque()
        self._in_body = False
        self._end_next = False
        self._mid_line = False  #: a long message line was passed on in part
        self._sasl_turn = False
        self._tls_done = False

    @property
    def pending(self) -> int:
        """How many commands await their response."""
        return len(self._pending)

    def text(self, raw: bytes) -> str:
        """Server bytes as text that is safe to show: UTF-8 (invalid octets replaced),
        the secrets masked, control characters escaped. The one door for server text."""
        text = raw.decode("utf-8", "replace")
        for secret in self._secrets:  # longest first: a secret holding another goes whole
            text = text.replace(secret, _HIDDEN)
        return printable(text)

    # -- sending ---------------------------------------------------------------------

    def send(self, cmd: Command | SaslResponse) -> bytes:
        """Encode ``cmd`` and record the response it expects.

        Raises LocalProtocolError when the command is illegal now: not in
        :data:`TRANSITIONS` for the state, sent behind a state-changing command
        still in flight, wrong arguments, CR/LF/NUL inside an argument.
        """
        if isinstance(cmd, SaslResponse):
            return self._send_sasl(cmd)
        if self.state in (State.ERROR, State.CLOSED, State.GREETING, State.TLS_PENDING):
            raise LocalProtocolError(f"cannot send {cmd.name} in state {self.state.value}")
        # Every entry but the last was queued when all before it expected the state of
        # that moment, so they share one on_ok: the first and the last decide (no loop
        # over a whole RETR window per command).
        pending, state = self._pending, self.state
        if pending and (pending[0].on_ok is not state or pending[-1].on_ok is not state):
            raise LocalProtocolError(f"cannot send {cmd.name}: a state change is in flight")
        entry = TRANSITIONS.get((self.state, cmd.name))
        if entry is None or (cmd.name == "STLS" and self._tls_done):
            raise LocalProtocolError(f"{cmd.name} is not allowed in state {self.state.value}")
        _check_args(cmd)
        reply, on_ok, on_err = entry
        if cmd.name in ("LIST", "UIDL") and cmd.args:
            reply = Reply.SINGLE
        line = " ".join([cmd.name, *cmd.args]).encode("utf-8") + b"\r\n"
        if len(line) > MAX_COMMAND:
            raise LocalProtocolError(f"{cmd.name} command longer than {MAX_COMMAND} octets")
        self._pending.append(_Pending(cmd.name, reply, on_ok, on_err))
        return line

    def _send_sasl(self, resp: SaslResponse) -> bytes:
        if not self._sasl_turn:
            raise LocalProtocolError("no SASL challenge is waiting for a response")
        if _BAD_ARG.search(resp.text):
            raise LocalProtocolError("CR, LF or NUL inside a SASL response")
        self._sasl_turn = False
        return resp.text.encode("ascii") + b"\r\n"

    def start_tls_done(self) -> None:
        """Call after the TLS handshake that followed +OK to STLS.

        Everything received since that +OK was plaintext sent before the
        handshake and has been discarded (CVE-2021-39272 class injection); the
        connection is back in AUTHORIZATION and the caller must re-issue CAPA
        (RFC 2595 §4).
        """
        if self.state is not State.TLS_PENDING:
            raise LocalProtocolError(f"start_tls_done in state {self.state.value}")
        self._buf.clear()
        self._tls_done = True
        self.state = State.AUTHORIZATION

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the server; ``b""`` means end of stream.

        In TLS_PENDING the bytes are plaintext from before the handshake and are dropped.
        """
        if not data:
            self._eof = True
        elif self.state is not State.TLS_PENDING:
            self._buf.more.append(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA. Raises RemoteProtocolError / LimitExceeded."""
        if self.state is State.ERROR:
            raise RemoteProtocolError("the connection already failed")
        try:
            return self._next()
        except RemoteProtocolError:
            self.state = State.ERROR
            raise

    def _next(self) -> Event | NeedData:
        if self._in_body:
            return self._body_event()
        if self.state is State.TLS_PENDING:
            return Closed() if self._eof else NEED_DATA
        if self.state is State.GREETING:
            return self._greeting_event()
        if not self._pending:
            if self._buf:
                raise RemoteProtocolError("the server sent data nobody asked for")
            return Closed() if self._eof else NEED_DATA
        line = self._take_line()
        if line is None:
            return NEED_DATA
        return self._status_event(line)

    def _take_line(self) -> bytes | None:
        """One complete single line without its line ending, or None (need more)."""
        line = self._buf.take_line(MAX_SINGLE_LINE)
        if line is None:
            if len(self._buf) > MAX_SINGLE_LINE:
                raise LimitExceeded(f"response line longer than {MAX_SINGLE_LINE} octets")
            if self._eof:
                raise RemoteProtocolError("connection closed while waiting for a response")
            return None
        return line[:-1] if line.endswith(b"\r") else line

    def _greeting_event(self) -> Event | NeedData:
        line = self._take_line()
        if line is None:
            return NEED_DATA
        event = self._parse_status(line, sasl=False)
        if isinstance(event, Ok):
            self.state = State.AUTHORIZATION
            stamp = _TIMESTAMP_RE.search(line)
            return Greeting(event.text, stamp.group().decode("ascii") if stamp else None)
        self.state = State.CLOSED
        return event

    def _parse_status(self, line: bytes, *, sasl: bool) -> Ok | Err | Continue:
        """Parse "+OK text" / "-ERR text" (and "+ challenge" when ``sasl``)."""
        head = line[:4].upper()
        if head[:3] == b"+OK" and line[3:4] in (b"", b" ", b"\t"):
            text, code = _split_code(self.text(line[4:].strip()))
            return Ok(text, code)
        if head == b"-ERR" and line[4:5] in (b"", b" ", b"\t"):
            raw = self.text(line[5:].strip())
            text, code = _split_code(raw)
            return Err(text, code, _code_argument(raw) if code else None)
        if sasl and (line == b"+" or line.startswith(b"+ ")):
            return Continue(self.text(line[2:].strip()))
        raise RemoteProtocolError(f'expected +OK or -ERR, got "{self.text(line[:80])}"')

    def _status_event(self, line: bytes) -> Event:
        head = self._pending[0]
        event = self._parse_status(line, sasl=head.reply is Reply.SASL)
        if isinstance(event, Continue):
            self._sasl_turn = True
            return event
        self._sasl_turn = False
        if isinstance(event, Ok) and head.reply is Reply.MULTI:
            self._in_body = True
            self._body_bound = self._body_limits.get(head.name)
            self._body_lines = self._body_octets = 0
            return event
        self._finish(isinstance(event, Ok))
        return event

    def _finish(self, ok: bool) -> None:
        head = self._pending.popleft()
        self.state = head.on_ok if ok else head.on_err
        if self.state is State.TLS_PENDING:
            # RFC 2595 §4 / CVE-2021-39272: nothing after +OK may be trusted.
            self._buf.clear()

    def _body_event(self) -> Event | NeedData:
        """Consume complete lines of a multi-line body with whole-block operations."""
        if self._end_next:
            self._end_next = self._in_body = False
            self._finish(True)
            return End()
        lines = self._buf.complete_lines()
        if lines is None:
            return self._body_starved()
        buf, pos, end = lines
        if self._mid_line:  # the rest of a long line: not a line start (RFC 1939 §3)
            self._mid_line = False
            cut = buf.index(b"\n", pos, end) + 1
            self._buf.pos = cut
            return Data(buf[pos:cut])
        dot, term = _find_terminator(buf, pos, end)
        stop = end if term is None else term[0]
        self._buf.pos = end if term is None else term[1]
        self._end_next = term is not None
        if buf.startswith(b".", pos) and pos < stop:
            pos += 1  # RFC 1939 §3: the first line of the block was byte-stuffed
        payload = buf[pos:stop]  # no copy when the block is the whole buffer
        if dot >= 0 and dot + 1 < stop:
            payload = payload.replace(b"\n.", b"\n")  # RFC 1939 §3 byte-unstuffing
        if self._body_bound is not None:
            self._count_listing(payload)
        if payload:
            return Data(payload)
        return self._body_event()

    def _line_piece(self) -> Data:
        """All of an unterminated message line received so far (no line ending in the
        buffer, so ``complete_lines`` merged everything into ``buf``)."""
        buf, pos = self._buf.buf, self._buf.pos
        if not self._mid_line and buf.startswith(b".", pos):
            pos += 1  # RFC 1939 §3: not the terminator (see _body_starved); unstuff it
        self._buf.pos = len(buf)
        self._mid_line = True
        return Data(buf[pos:])

    def _count_listing(self, payload: bytes) -> None:
        """Enforce the bounds of a listing body (CAPA, UIDL, LIST): one-line error."""
        assert self._body_bound is not None
        max_lines, max_octets = self._body_bound
        self._body_lines += payload.count(b"\n")
        self._body_octets += len(payload)
        if self._body_lines > max_lines or self._body_octets > max_octets:
            name = self._pending[0].name
            raise LimitExceeded(
                f"{name} listing longer than {max_lines} lines or {max_octets} octets; "
                "no real mailbox is that large"
            )

    def _body_starved(self) -> Data | NeedData:
        # The bound applies to the unterminated tail, so the buffer never holds
        # more than max_line plus one read while waiting for a line ending.
        if self._body_bound is None and len(self._buf) > self.max_line:
            buf, pos = self._buf.buf, self._buf.pos
            # ".", ".\r" at a line start may still become the terminator (RFC 1939 §3)
            if self._mid_line or not buf.startswith(b".", pos) or len(buf) - pos > 2:
                return self._line_piece()
        if self._body_bound is not None and len(self._buf) > MAX_SINGLE_LINE:
            raise LimitExceeded(
                f"line longer than {MAX_SINGLE_LINE} octets in a {self._pending[0].name} listing"
            )
        if self._eof:
            raise RemoteProtocolError("connection closed inside a multi-line response")
        return NEED_DATA


def _find_terminator(buf: bytes, pos: int, end: int) -> tuple[int, tuple[int, int] | None]:
    """Search the complete lines ``buf[pos:end]`` for the "." terminator line.

    Returns (offset of the first "\\n." or -1, (start, end) of the terminator or
    None). Bare-LF ".\\n" terminates as well as ".\\r\\n" (broken servers). Most
    blocks hold no "\\n." at all, so one scan usually decides. A one-octet search
    for "." (memchr, many times faster than the two-octet one) goes first: it
    settles a block without any "." (base64 attachments) and lets the "\\n."
    search start just before the first ".".
    """
    first = buf.find(b".", pos, end)
    if first < 0:
        return -1, None
    if buf.startswith(b".\r\n", pos):
        return -1, (pos, pos + 3)
    if buf.startswith(b".\n", pos):
        return -1, (pos, pos + 2)
    dot = buf.find(b"\n.", max(pos, first - 1), end)
    if dot < 0:
        return dot, None
    crlf = buf.find(b"\n.\r\n", dot, end)
    # Search for the bare-LF form only before the CRLF one: a block holds many
    # messages, and an unbounded search would rescan the rest of it per message.
    lf = buf.find(b"\n.\n", dot, end if crlf < 0 else crlf + 3)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return dot, (crlf + 1, crlf + 4)
    if lf >= 0:
        return dot, (lf + 1, lf + 3)
    return dot, None


def _split_code(raw: str) -> tuple[str, str | None]:
    """Text and RFC 2449 §8 response code ("[IN-USE] text" → ("text", "IN-USE"))."""
    text = raw.strip()
    match = _CODE_RE.match(text)
    if match is None:
        return text, None
    return text[match.end() :], match.group(1).upper()


def _code_argument(raw: str) -> str | None:
    """The argument after the response code inside the brackets, if any."""
    match = _CODE_RE.match(raw.strip())
    argument = match.group(2) if match else None
    return argument.strip() or None if argument else None


def _check_args(cmd: Command) -> None:
    arity = _ARITY.get(cmd.name, (0, 0, ()))
    lo, hi, numeric = arity
    if not lo <= len(cmd.args) <= hi:
        raise LocalProtocolError(f"{cmd.name} takes {lo}..{hi} arguments, got {len(cmd.args)}")
    for i, arg in enumerate(cmd.args):
        if _BAD_ARG.search(arg) or not arg:
            raise LocalProtocolError(f"{cmd.name}: empty argument or CR/LF/NUL inside one")
        if " " in arg and cmd.name != "PASS":  # RFC 1939 §7: PASS may contain spaces
            raise LocalProtocolError(f"{cmd.name}: space inside an argument")
        if i in numeric and not (arg.isascii() and arg.isdigit()):
            raise LocalProtocolError(f"{cmd.name}: argument {i + 1} must be a number")


def stuff(message: bytes) -> bytes:
    """The multi-line body a server sends for ``message`` (RFC 1939 §3), terminator included.

    Every line starting with "." gets one more "."; lines end where ``message``
    has "\\n" (CRLF or bare LF, passed through). If ``message`` is non-empty and
    does not end with "\\n", "\\r\\n" is appended first. Hence, for the codec,
    ``unstuff(stuff(m)) == m`` when ``m`` is empty or ends with "\\n", else ``m + b"\\r\\n"``.
    """
    body = message.replace(b"\n.", b"\n..")
    if body[:1] == b".":
        body = b"." + body
    if body and not body.endswith(b"\n"):
        body += b"\r\n"
    return body + b".\r\n"


def apop_digest(timestamp: str, password: str) -> str:
    """RFC 1939 §7: lowercase hex MD5 of the greeting timestamp followed by the secret."""
    raw = (timestamp + password).encode("utf-8")
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


def plain_response(user: str, password: str, authzid: str = "") -> str:
    """RFC 4616 PLAIN message, base64 (RFC 5034 §4): authzid NUL authcid NUL passwd."""
    raw = f"{authzid}\0{user}\0{password}".encode()
    return base64.b64encode(raw).decode("ascii")

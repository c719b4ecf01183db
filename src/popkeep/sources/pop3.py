"""The POP3 source: a session that drives :mod:`popkeep.pop3.codec` over a Stream.

:class:`POP3Source` is what the collector drives (:class:`~popkeep.sources.base.SourceSession`:
opaque keys, here the UIDLs); :class:`POP3Session` underneath speaks RFC 1939 with
message numbers, which never leave this module.

Owns: the order of a session (greeting → CAPA → STLS → CAPA → authenticate →
commands → QUIT), the security rules (no password before TLS unless the user
chose ``tls="none"``; plaintext received before the handshake is discarded),
the choice of authentication mechanism, pipelining windows (RFC 2449 §6.6),
streaming message bodies into the spool it is given, response and
session timeouts, and turning -ERR replies into popkeep errors.
Must not: open sockets itself (a ``StreamOpener`` is injected), decide what to
fetch or delete, or log secrets (commands are logged through ``Command.__str__``,
which masks PASS / APOP / AUTH arguments and SASL responses).

One operation at a time: do not start a command while a ``retrieve`` iterator
is suspended. An abandoned ``retrieve`` leaves responses in flight; the next
operation reads and discards them first. After a transport, protocol or limit
error the session is unusable: :meth:`POP3Session.quit` then closes without
QUIT (so the server deletes nothing) and returns False.
"""

import contextlib
import logging
import time
from array import array
from collections import Counter, deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Literal, NamedTuple

from popkeep.errors import (
    AuthError,
    LimitExceeded,
    MessageAborted,
    MessageError,
    NetworkTimeout,
    PopkeepError,
    RemoteProtocolError,
    SecurityError,
    ServerBusy,
    ServerError,
    ServerRefused,
)
from popkeep.headers import HEADER_LIMIT, header_digest, header_of
from popkeep.model import ServerStat
from popkeep.pop3 import sasl
from popkeep.pop3.codec import (
    NEED_DATA,
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
    plain_response,
)
from popkeep.pop3.codec import apop_digest as _apop_digest
from popkeep.pop3.listing import (
    IDENTITY_PREFIX,
    NO_SIZE,
    ScanBuilder,
    UidIndex,
    UidIndexBuilder,
    identity_key,
    parse_capa,
    parse_scan_line,
    parse_stat,
)
from popkeep.sources.base import ListedMessage, Listing
from popkeep.spool import SpooledMessage, SpoolFactory, SpoolWriter
from popkeep.transport.base import Stream, TLSInfo, TLSSettings

logger = logging.getLogger(__name__)

READ_SIZE = 256 << 10
#: at most this many sizes (and 1/32 of the mailbox) are asked with one ``LIST n`` each
FEW_SIZES = 512
FEW_SIZES_SERIAL = 8
_STATUS_EVENTS = (Ok, Err, Continue)  #: logged at debug level (a tuple: no union built per event)
_BUSY_CODES = frozenset({"IN-USE", "LOGIN-DELAY", "SYS/TEMP"})  # RFC 2449 §8, RFC 3206
#: Seconds to wait for the server's greeting (at most ``response_timeout``). A POP3
#: server greets as soon as the connection is open (RFC 1939 §4), so a greeting that
#: takes longer most likely never comes: the port expects a TLS handshake first
#: (implicit TLS, port 995) while the account says "starttls" or "none".
GREETING_TIMEOUT = 10.0
IMPLICIT_TLS_PORT = 995  #: RFC 8314 §7.3 (pop3s)


class SessionSettings(NamedTuple):
    """Everything one POP3 session needs; built from the account config."""

    host: str
    port: int
    tls: Literal["implicit", "starttls", "none"]
    tls_settings: TLSSettings
    user: str
    password: str  #: the password, or the OAuth 2.0 access token for the bearer mechanisms
    auth: Literal["auto", "user", "apop", "plain", "oauth2", "xoauth2", "oauthbearer"] = "auto"
    connect_timeout: float = 30
    response_timeout: float = 60
    greeting_timeout: float = GREETING_TIMEOUT
    session_timeout: float = 3600
    max_line: int = 1 << 20
    max_message_size: int | None = None
    pipeline_window: int = 64
    #: whether the account leaves mail on the server after collecting it (any
    #: ``delete_after`` but "0s"): then messages must be recognised in later sessions,
    #: which a server without UIDL allows only through TOP (see POP3Source.list_mailbox)
    keeps_mail: bool = True

    def __repr__(self) -> str:  # never show the password
        return f"SessionSettings(host={self.host!r}, port={self.port}, user={self.user!r}, …)"


#: (host, port, implicit-TLS settings or None, connect_timeout, read_timeout) → Stream
StreamOpener = Callable[[str, int, TLSSettings | None, float, float], Awaitable[Stream]]


def _describe(err: Err) -> str:
    return f"[{err.code}] {err.text}" if err.code else err.text


def _seconds(word: str | None) -> float | None:
    return float(word) if word is not None and word.isascii() and word.isdigit() else None


def capa_login_delay(capabilities: Mapping[str, Sequence[str]]) -> float | None:
    """CAPA ``LOGIN-DELAY n``: the seconds the server asks between logins (RFC 2449
    §6.5; read after authentication, §5, the value for this user; a trailing ``USER``
    only says it may differ per user). None when absent or not a number."""
    return _seconds(next(iter(capabilities.get("LOGIN-DELAY", ())), None))


def login_delay(err: Err, capabilities: Mapping[str, list[str]]) -> float | None:
    """Seconds the server wants between logins after -ERR [LOGIN-DELAY] (RFC 2449
    §8.1.1): the number some servers put in the brackets, else the CAPA LOGIN-DELAY
    value (§6.5; in AUTHORIZATION state it may be missing or the largest of any user)."""
    if err.code != "LOGIN-DELAY":
        return None
    delay = _seconds(err.argument)
    return capa_login_delay(capabilities) if delay is None else delay


def server_error(
    what: str, err: Err, capabilities: Mapping[str, list[str]] | None = None
) -> ServerError:
    """-ERR → ServerBusy for temporary codes, ServerRefused for [SYS/PERM], else ServerError."""
    message = f"{what}: server said -ERR {_describe(err)}"
    if err.code in _BUSY_CODES:
        return ServerBusy(message, err.code, login_delay(err, capabilities or {}))
    if err.code == "SYS/PERM":
        return ServerRefused(message, err.code)
    return ServerError(message, err.code)


def auth_error(
    what: str, err: Err, capabilities: Mapping[str, list[str]] | None = None
) -> PopkeepError:
    """-ERR to an authentication command: AuthError unless the code says busy / refused."""
    if err.code in _BUSY_CODES or err.code == "SYS/PERM":
        return server_error(what, err, capabilities)
    return AuthError(f"{what}: server said -ERR {_describe(err)}")


class POP3Session:
    """One authenticated POP3 session in TRANSACTION state. Create with :meth:`connect`."""

    def __init__(
        self, stream: Stream, settings: SessionSettings, spool: SpoolFactory = SpoolWriter
    ) -> None:
        self._stream = stream
        self._settings = settings
        self._spool = spool
        self._conn = Connection(max_line=settings.max_line, secrets=(settings.password,))
        self._deadline = time.monotonic() + settings.session_timeout
        self._broken = False
        self._timestamp: str | None = None
        self.capabilities: dict[str, list[str]] = {}
        self.greeting = ""
        #: sizes by message number from this session's full LIST (see :meth:`sizes`)
        self._scan: array[int] | None = None

    @classmethod
    async def connect(
        cls, settings: SessionSettings, opener: StreamOpener, spool: SpoolFactory = SpoolWriter
    ) -> "POP3Session":
        """Open, read the greeting, CAPA, STLS if configured, authenticate.

        ``spool`` makes the writer each retrieved message goes into.

        Raises TransportError, TLSError, SecurityError (TLS required but not
        available: the password was not sent), AuthError, ServerBusy, ServerRefused.
        """
        implicit = settings.tls_settings if settings.tls == "implicit" else None
        stream = await opener(
            settings.host, settings.port, implicit,
            settings.connect_timeout, settings.response_timeout,
        )
        session = cls(stream, settings, spool)
        try:
            await session._open()
        except BaseException:
            await session.close()
            raise
        return session

    @classmethod
    async def certificate(cls, settings: SessionSettings, opener: StreamOpener) -> TLSInfo:
        """The server's certificate, read over TLS *without* verifying it, after the
        verified connection failed (``popkeep check`` shows its fingerprint and pin).

        Greeting, CAPA and STLS for ``starttls``; then the connection is closed
        without QUIT: no user name or password is ever sent over it (the settings'
        password is dropped before connecting). Raises TransportError, SecurityError."""
        unverified = settings.tls_settings._replace(fingerprint=None, verify=False)
        settings = settings._replace(tls_settings=unverified, password="")
        implicit = unverified if settings.tls == "implicit" else None
        stream = await opener(
            settings.host, settings.port, implicit,
            settings.connect_timeout, settings.response_timeout,
        )
        session = cls(stream, settings)
        try:
            if settings.tls == "starttls":
                event = await session._greeting()
                if not isinstance(event, Greeting):
                    raise RemoteProtocolError(f"expected a greeting, got {event!r}")
                await session._capa()
                await session._starttls()
            if stream.tls is None:
                raise SecurityError(f"{settings.host}: no TLS to read a certificate from")
            return stream.tls
        finally:
            await session.close()

    @classmethod
    async def probe(cls, settings: SessionSettings, opener: StreamOpener) -> dict[str, list[str]]:
        """What the server at ``settings`` offers, without logging in (``popkeep
        init`` looking for a provider's server): greeting, CAPA, and for
        ``starttls`` STLS and CAPA again, over TLS verified as ``settings`` say.
        The connection is closed without QUIT and no user name or password is
        ever sent (the password is dropped before connecting). Returns the
        capabilities seen over TLS (RFC 2595 §4: the pre-TLS ones are forgotten).
        Raises TransportError, TLSError, SecurityError (no STLS offered),
        RemoteProtocolError (not a POP3 server)."""
        settings = settings._replace(password="")
        implicit = settings.tls_settings if settings.tls == "implicit" else None
        stream = await opener(
            settings.host, settings.port, implicit,
            settings.connect_timeout, settings.response_timeout,
        )
        session = cls(stream, settings)
        try:
            event = await session._greeting()
            if not isinstance(event, Greeting):
                raise RemoteProtocolError(f"expected a POP3 greeting, got {event!r}")
            await session._capa()
            if settings.tls == "starttls":
                await session._starttls()
            return session.capabilities
        finally:
            await session.close()

    @property
    def tls(self) -> TLSInfo | None:
        return self._stream.tls

    @property
    def settings(self) -> SessionSettings:
        return self._settings

    # -- session setup ---------------------------------------------------------------

    async def _open(self) -> None:
        event = await self._greeting()
        if isinstance(event, Err):
            raise server_error("greeting", event)
        if not isinstance(event, Greeting):
            raise RemoteProtocolError(f"expected a greeting, got {event!r}")
        self.greeting, self._timestamp = event.text, event.apop_timestamp
        await self._capa()
        if self._settings.tls == "starttls":
            await self._starttls()
        elif self._settings.tls == "none":
            logger.warning("%s: plaintext POP3 (tls = \"none\"): the password is not protected",
                           self._settings.host)
        await self._authenticate()
        await self._capa()  # RFC 2449 §5: capabilities may change after authentication

    async def _greeting(self) -> Event:
        """The first event, within ``greeting_timeout`` in all (see :data:`GREETING_TIMEOUT`);
        each read is still bounded by ``response_timeout`` and the session's deadline.

        Raises NetworkTimeout when it does not come; its hint names implicit TLS when
        TLS was not started at once and the port is 995 or nothing at all arrived.
        LimitExceeded when the session deadline comes first."""
        settings = self._settings
        deadline = time.monotonic() + settings.greeting_timeout
        received = 0
        try:
            while (event := self._conn.next_event()) is NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._no_greeting(settings.greeting_timeout, received)
                wait = min(left, settings.response_timeout, self._check_deadline())
                try:
                    data = await self._stream.read(READ_SIZE, wait)
                except NetworkTimeout as exc:
                    if wait < min(left, settings.response_timeout):
                        raise LimitExceeded(
                            f"session longer than {settings.session_timeout}s"
                        ) from exc
                    bound = settings.response_timeout if wait < left else settings.greeting_timeout
                    raise self._no_greeting(bound, received) from exc
                received += len(data)
                self._conn.receive_data(data)
        except BaseException:
            self._broken = True
            raise
        if isinstance(event, _STATUS_EVENTS):
            logger.debug("S: %s", event)
        return event

    def _no_greeting(self, limit: float, received: int) -> NetworkTimeout:
        settings = self._settings
        what = "nothing" if not received else f"{received} bytes but no whole line"
        error = NetworkTimeout(
            f"{settings.host}:{settings.port}: no POP3 greeting within {limit:g} s ({what} arrived)"
        )
        if settings.tls != "implicit" and (not received or settings.port == IMPLICIT_TLS_PORT):
            error.hint = (
                f'port {settings.port} probably expects TLS at once: set tls = "implicit" '
                f'(or use the port for tls = "{settings.tls}", usually 110)'
            )
        return error

    async def _capa(self) -> None:
        await self._send(Command("CAPA"))
        body = await self._collect()
        if isinstance(body, Err):
            logger.info("server does not support CAPA: %s", body.text)
            return
        self.capabilities = parse_capa(body)

    async def _starttls(self) -> None:
        """RFC 2595 §4. Raises SecurityError before any credential is sent."""
        if "STLS" not in self.capabilities:
            raise SecurityError(
                f"{self._settings.host} does not advertise STLS; refusing to send the "
                "password in plaintext"
            )
        event = await self._single(Command("STLS"))
        if isinstance(event, Err):
            raise SecurityError(f"{self._settings.host} refused STLS: {_describe(event)}")
        try:
            await self._stream.start_tls(self._settings.tls_settings)
        except BaseException:
            self._broken = True
            raise
        self._conn.start_tls_done()  # drops whatever arrived after +OK (CVE-2021-39272)
        self.capabilities = {}  # RFC 2595 §4: forget pre-TLS capabilities
        await self._capa()

    def _choose_auth(self) -> str:
        """auto: SASL PLAIN if offered, else USER/PASS if offered (or no CAPA), else APOP.

        oauth2: OAUTHBEARER when the server lists it in CAPA SASL and not XOAUTH2,
        else XOAUTH2 (the mechanism Google and Microsoft document for POP3, which
        some servers do not list)."""
        wanted = self._settings.auth
        if wanted == "oauth2":
            offered = {m.upper() for m in self.capabilities.get("SASL", [])}
            if "OAUTHBEARER" in offered and "XOAUTH2" not in offered:
                return "oauthbearer"
            return "xoauth2"
        if wanted != "auto":
            return wanted
        caps = self.capabilities
        if "PLAIN" in (m.upper() for m in caps.get("SASL", [])):
            return "plain"
        if "USER" in caps or not caps:
            return "user"
        if self._timestamp:
            return "apop"
        raise ServerRefused(
            f"{self._settings.host} offers no usable login (no SASL PLAIN, USER or APOP)"
        )

    async def _authenticate(self) -> None:
        method = self._choose_auth()
        steps = {"plain": self._auth_plain, "user": self._auth_user, "apop": self._auth_apop,
                 "xoauth2": self._auth_xoauth2, "oauthbearer": self._auth_oauthbearer}
        await steps[method]()
        logger.info("%s: logged in as %s (%s)", self._settings.host, self._settings.user, method)

    async def _auth_user(self) -> None:
        event = await self._single(Command("USER", self._settings.user))
        if isinstance(event, Err):
            raise auth_error("USER", event, self.capabilities)
        event = await self._single(Command("PASS", self._settings.password))
        if isinstance(event, Err):
            raise auth_error("PASS", event, self.capabilities)

    async def _auth_apop(self) -> None:
        if not self._timestamp:
            raise ServerRefused(f"{self._settings.host} does not offer APOP (no timestamp)")
        digest = _apop_digest(self._timestamp, self._settings.password)
        event = await self._single(Command("APOP", self._settings.user, digest))
        if isinstance(event, Err):
            raise auth_error("APOP", event, self.capabilities)

    async def _auth_plain(self) -> None:
        """RFC 5034 §4: initial response unless the command would exceed 255 octets."""
        response: str | None = plain_response(self._settings.user, self._settings.password)
        assert response is not None
        if len(response) + len("AUTH PLAIN \r\n") <= 255:
            await self._send(Command("AUTH", "PLAIN", response))
            response = None
        else:
            await self._send(Command("AUTH", "PLAIN"))
        event = await self._event()
        while isinstance(event, Continue):
            # A challenge after the initial response is bogus for PLAIN: cancel ("*").
            await self._send(SaslResponse(response or "*"))
            response = None
            event = await self._event()
        if isinstance(event, Err):
            raise auth_error("AUTH PLAIN", event, self.capabilities)

    async def _auth_xoauth2(self) -> None:
        await self._auth_bearer("XOAUTH2")

    async def _auth_oauthbearer(self) -> None:
        await self._auth_bearer("OAUTHBEARER")

    async def _auth_bearer(self, mechanism: str) -> None:
        """RFC 5034 §4 AUTH with an OAuth 2.0 access token (XOAUTH2 or RFC 7628
        OAUTHBEARER). A token makes the command longer than 255 octets, so the
        response usually follows the server's empty "+ " challenge. A second
        challenge is the server's error (base64 JSON): the client answers it as the
        mechanism says (:func:`~popkeep.pop3.sasl.failure_response`) and the server
        then sends -ERR, which becomes an AuthError quoting that error."""
        settings = self._settings
        response: str | None = sasl.initial_response(
            mechanism, settings.user, settings.password, settings.host, settings.port)
        assert response is not None
        if len(response) + len(f"AUTH {mechanism} \r\n") <= 255:
            await self._send(Command("AUTH", mechanism, response))
            response = None
        else:
            await self._send(Command("AUTH", mechanism))
        refused = ""
        event = await self._event()
        while isinstance(event, Continue):
            if response is not None:
                await self._send(SaslResponse(response))
                response = None
            else:
                refused = sasl.error_detail(event.text)
                await self._send(SaslResponse(sasl.failure_response(mechanism)))
            event = await self._event()
        if isinstance(event, Err):
            error = auth_error(f"AUTH {mechanism}", event, self.capabilities)
            if refused and isinstance(error, AuthError):
                error = AuthError(f"{error} (the access token was refused: {refused})")
            raise error

    # -- transaction commands --------------------------------------------------------

    async def stat(self) -> ServerStat:
        """STAT (RFC 1939 §5)."""
        await self._drain()
        event = await self._single(Command("STAT"))
        if isinstance(event, Err):
            raise server_error("STAT", event)
        return parse_stat(event.text)

    async def uids(self, count: int) -> UidIndex | None:
        """UIDL (RFC 1939 §7) of a mailbox of ``count`` messages (STAT) → its
        :class:`~popkeep.pop3.listing.UidIndex`: the consistent entries by key, the
        keys several messages share, and how many lines were left out. None when the
        server refuses UIDL (optional in RFC 1939 §7).
        """
        await self._drain()
        # Asked even when CAPA does not list UIDL (RFC 2449 §6.7): a server that
        # leaves it out but answers it keeps the keys its messages were collected by.
        await self._send(Command("UIDL"))
        index = UidIndexBuilder()  # parses each piece while the next one is on its way
        refused = await self._body(index.feed)
        if refused is not None:
            logger.info("%s: no UIDL (RFC 1939 §7): %s", self._settings.host, _describe(refused))
            return None
        return index.result(count)

    async def sizes(self, numbers: Sequence[int], count: int) -> dict[int, int]:
        """Sizes (octets, as LIST reports them) of ``numbers``, of ``count`` messages in all.

        A few messages are asked one ``LIST n`` each (pipelined where the server
        offers PIPELINING), so a poll with little new mail does not transfer and
        parse the scan listing of the whole mailbox; many are asked with one LIST,
        kept for the session in one compact array (a fetch asks in groups: the
        listing is read once). A message whose size the server does not tell
        consistently (not listed, listed twice, an unparsable line, -ERR to
        ``LIST n``) is left out of the result: never fetched or deleted on that
        listing.
        """
        await self._drain()
        if self._pipelining:
            # one scan line costs far less than one LIST n round of the codec
            few = len(numbers) <= min(FEW_SIZES, max(16, count // 32))
        else:
            few = len(numbers) <= FEW_SIZES_SERIAL  # each one a round trip
        if few and self._scan is None:
            return await self._sizes_one_by_one(numbers)
        if self._scan is None:
            self._scan = await self._list_all(count)
        scan = self._scan
        return {n: scan[n] for n in numbers if 0 < n < len(scan) and scan[n] != NO_SIZE}

    async def _list_all(self, count: int) -> "array[int]":
        """LIST (RFC 1939 §5) of the whole mailbox: sizes by message number, kept for
        the session (message numbers and sizes do not change within one; RFC 1939 §6:
        a DELE'd message is only left out of later listings, see :meth:`delete`)."""
        await self._send(Command("LIST"))
        builder = ScanBuilder()
        refused = await self._body(builder.feed)
        if refused is not None:
            raise server_error("LIST", refused)
        return builder.result(count)

    async def _sizes_one_by_one(self, numbers: Sequence[int]) -> dict[int, int]:
        window = self._settings.pipeline_window if self._pipelining else 1
        sizes: dict[int, int] = {}
        for start in range(0, len(numbers), window):
            batch = numbers[start : start + window]
            await self._send(*(Command("LIST", str(n)) for n in batch))
            for number in batch:
                event = await self._event()
                if isinstance(event, Err):
                    logger.info("LIST %d refused although UIDL listed it: %s",
                                number, _describe(event))
                    continue
                if not isinstance(event, Ok):
                    raise RemoteProtocolError(f"unexpected {event!r} in reply to LIST {number}")
                try:
                    sizes[number] = parse_scan_line(event.text, number)
                except RemoteProtocolError as exc:
                    logger.info("%s", exc)
        return sizes

    @property
    def offers_top(self) -> bool:
        """Whether TOP may work: advertised in CAPA (RFC 2449 §6.3), or no CAPA answer
        to tell (RFC 1939 §7: TOP is optional; then it is simply tried)."""
        return not self.capabilities or "TOP" in self.capabilities

    async def header_digests(self, numbers: Sequence[int]) -> dict[int, str]:
        """``TOP n 0`` (RFC 1939 §7) of each message → the digest of its header
        (:func:`popkeep.headers.header_digest`), pipelined like RETR.

        Messages whose TOP the server refuses (-ERR) are left out of the result; a
        server whose CAPA lacks TOP is not asked at all ({}). The caller decides what
        a missing digest means. At most ``HEADER_LIMIT`` octets of a header count;
        the rest is read and dropped (bounded memory).
        """
        await self._drain()
        if not self.offers_top or not numbers:
            return {}
        window = self._settings.pipeline_window if self._pipelining else 1
        digests: dict[int, str] = {}
        for start in range(0, len(numbers), window):
            batch = numbers[start : start + window]
            await self._send(*(Command("TOP", str(n), "0") for n in batch))
            for number in batch:
                head = await self._header(number)
                if head is not None:
                    digests[number] = header_digest(head)
        return digests

    async def _header(self, number: int) -> bytes | None:
        """The reply to one ``TOP n 0``: the header (bounded), or None on -ERR."""
        parts: list[bytes] = []
        held = 0

        def keep(data: bytes) -> None:
            nonlocal held
            if held < HEADER_LIMIT:
                parts.append(data)
                held += len(data)

        refused = await self._body(keep)
        if refused is not None:
            logger.info("TOP %d 0 refused: %s", number, _describe(refused))
            return None
        return header_of(parts)

    async def retrieve(
        self, numbers: Sequence[int]
    ) -> AsyncGenerator[tuple[int, SpooledMessage], None]:
        """RETR each message, yielding (number, message) in order.

        Up to ``pipeline_window`` RETR are in flight when the server offers
        PIPELINING, else one. Each body streams into a writer of the session's
        spool (memory bounded). A body beyond ``max_message_size`` raises
        LimitExceeded and spoils the session. Messages the server refuses (-ERR)
        are skipped and, after all others were yielded, reported by one MessageError.
        """
        await self._drain()
        window = self._settings.pipeline_window if self._pipelining else 1
        todo = deque(numbers)
        in_flight: deque[int] = deque()
        refused: list[int] = []
        while todo or in_flight:
            # Refill the window in bulk once half of it has been answered: one write
            # (and one syscall) per window/2 commands instead of one per message.
            room = window - len(in_flight)
            batch = []
            if room * 2 >= window or not in_flight:
                batch = [todo.popleft() for _ in range(min(len(todo), room))]
            if batch:
                await self._send(*(Command("RETR", str(n)) for n in batch))
                in_flight.extend(batch)
            number = in_flight.popleft()
            message = await self._read_message(number)
            if message is None:
                refused.append(number)
            else:
                yield number, message
        if refused:
            raise MessageError(f"server refused RETR of message(s) {refused}")

    async def _read_message(self, number: int) -> SpooledMessage | None:
        event = await self._event()
        if isinstance(event, Err):
            logger.warning("RETR %d refused: %s", number, _describe(event))
            return None
        limit = self._settings.max_message_size
        writer = self._spool()
        try:
            while not isinstance(event, End):
                event = await self._event()
                if isinstance(event, Data):
                    writer.write(event.data)
                    if limit is not None and writer.size > limit:
                        self._broken = True
                        raise MessageAborted(
                            f"message {number} is larger than {limit} octets", str(number)
                        )
            return writer.finish()
        except BaseException:
            writer.discard()
            raise

    async def delete(self, numbers: Sequence[int]) -> list[int]:
        """DELE each message (pipelined); returns the numbers the server refused.

        Deletions take effect only on QUIT +OK. A refusal (e.g. "-ERR message
        expunged" when another client removed it meanwhile) spoils nothing: every
        reply is read, the session stays usable, and the caller decides.
        """
        await self._drain()
        self._scan = None  # a LIST from now on leaves these out (RFC 1939 §6)
        window = self._settings.pipeline_window if self._pipelining else 1
        refused: list[int] = []
        for start in range(0, len(numbers), window):
            batch = numbers[start : start + window]
            await self._send(*(Command("DELE", str(n)) for n in batch))
            for number in batch:
                event = await self._event()
                if isinstance(event, Err):
                    refused.append(number)
        if refused:
            logger.warning("server refused DELE of message(s) %s", refused)
        return refused

    async def quit(self) -> bool:
        """QUIT. True only on +OK: the server has entered UPDATE (RFC 1939 §6).

        A failure is logged at info level only: the caller reports what it means
        (the collector fails the pass when deletions were pending)."""
        try:
            if self._broken or self._conn.state is not State.TRANSACTION:
                return False
            await self._drain()
            event = await self._single(Command("QUIT"))
            if isinstance(event, Err):
                logger.info("QUIT: -ERR %s; deletions not confirmed", _describe(event))
            return isinstance(event, Ok)
        except PopkeepError as exc:
            logger.info("QUIT failed (%s); deletions not confirmed", exc)
            return False
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the stream without QUIT (the server then deletes nothing). Never raises."""
        self._broken = True
        await self._stream.close()

    # -- plumbing --------------------------------------------------------------------

    @property
    def _pipelining(self) -> bool:
        return "PIPELINING" in self.capabilities

    async def _send(self, *commands: Command | SaslResponse) -> None:
        try:
            self._check_deadline()
            wire = b"".join(self._conn.send(cmd) for cmd in commands)
            for cmd in commands:
                logger.debug("C: %s", cmd)  # masked by Command.__str__
            await self._stream.write(wire)
        except BaseException:
            self._broken = True
            raise

    async def _single(self, cmd: Command) -> Ok | Err:
        await self._send(cmd)
        event = await self._event()
        if not isinstance(event, Ok | Err):
            raise RemoteProtocolError(f"unexpected {event!r} in reply to {cmd}")
        return event

    async def _collect(self) -> bytes | Err:
        """A whole multi-line reply (CAPA, LIST): its body, or the -ERR."""
        parts: list[bytes] = []
        refused = await self._body(parts.append)
        return b"".join(parts) if refused is None else refused

    async def _body(self, feed: Callable[[bytes], object]) -> Err | None:
        """A multi-line reply's body to ``feed``, piece by piece as it arrives (whole
        lines each); the -ERR instead, if the server refused."""
        event = await self._event()
        if isinstance(event, Err):
            return event
        while not isinstance(event, End):
            event = await self._event()
            if isinstance(event, Data):
                feed(event.data)
        return None

    async def _drain(self) -> None:
        """Read and drop replies still in flight from an abandoned retrieve."""
        while self._conn.pending:
            await self._event()

    async def _event(self) -> Event:
        try:
            while True:
                event = self._conn.next_event()
                if event is not NEED_DATA:
                    if isinstance(event, _STATUS_EVENTS):
                        logger.debug("S: %s", event)
                    return event
                self._conn.receive_data(await self._read())
        except BaseException:
            self._broken = True
            raise

    async def _read(self) -> bytes:
        remaining = self._check_deadline()
        timeout = min(self._settings.response_timeout, remaining)
        try:
            return await self._stream.read(READ_SIZE, timeout)
        except NetworkTimeout as exc:
            if timeout < self._settings.response_timeout:
                raise LimitExceeded(
                    f"session longer than {self._settings.session_timeout}s"
                ) from exc
            raise NetworkTimeout(
                f"{self._settings.host}: no response within {timeout}s"
            ) from exc

    def _check_deadline(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise LimitExceeded(f"session longer than {self._settings.session_timeout}s")
        return remaining


def _identity_keys(
    numbers: Iterable[int], sizes: Mapping[int, int], digests: Mapping[int, str],
    uid: str | None = None,
) -> dict[str, int]:
    """:func:`~popkeep.pop3.listing.identity_key` → message number for each of
    ``numbers`` (in message-number order) with a size and a header digest; an alike
    one's occurrence counts those before it. The others are left out."""
    seen: Counter[tuple[str, int]] = Counter()
    keys: dict[str, int] = {}
    for number in numbers:
        if number in sizes and number in digests:
            identity = (digests[number], sizes[number])
            seen[identity] += 1
            keys[identity_key(*identity, seen[identity], uid=uid)] = number
    return keys


class POP3Source:
    """A :class:`POP3Session` as the collector drives it: UIDLs are the keys.

    The message numbers of the last :meth:`list_mailbox` (this session's, RFC 1939 §5) are
    kept here and used for every later command.
    """

    def __init__(self, session: POP3Session, keeps_mail: bool = True) -> None:
        self._session = session
        self._keeps_mail = keeps_mail  #: see SessionSettings.keeps_mail
        self._numbers: dict[str, int] = {}  #: uid → message number, from the last UIDL
        #: messages in the maildrop (the last STAT): the numbers LIST may answer for,
        #: more than ``_numbers`` holds when listing entries were left out
        self._count = 0

    @classmethod
    async def connect(
        cls, settings: SessionSettings, opener: StreamOpener, spool: SpoolFactory
    ) -> "POP3Source":
        """Log in (see :meth:`POP3Session.connect`)."""
        return cls(await POP3Session.connect(settings, opener, spool), settings.keeps_mail)

    @property
    def tls(self) -> TLSInfo | None:
        return self._session.tls

    @property
    def capabilities(self) -> dict[str, list[str]]:
        return self._session.capabilities

    @property
    def login_interval(self) -> float | None:
        return capa_login_delay(self._session.capabilities)

    async def list_mailbox(self) -> Listing:
        """STAT, then UIDL (RFC 1939 §5, §7). Entries of the listing that are not
        consistent are left out and counted in :attr:`Listing.skipped`."""
        stat = await self._session.stat()
        self._count = stat.messages
        index = await self._session.uids(stat.messages)
        if index is None:
            return await self._list_without_uidl(stat)
        self._numbers = index.keys
        skipped = index.skipped
        if index.shared:
            told, untold = await self._tell_apart(index.shared, stat.messages)
            self._numbers = dict(sorted({**index.keys, **told}.items(), key=lambda kv: kv[1]))
            skipped += untold
        return Listing(stat.messages, stat.octets, self._numbers.keys(), skipped)

    async def _list_without_uidl(self, stat: ServerStat) -> Listing:
        """The listing of a server without UIDL (optional in RFC 1939 §7).

        An account that deletes what it collects in the same session (``delete_after
        = "0s"``) needs no key that lasts: each message gets one of this session only
        (``no-uidl <random> <number>``), and a message left by a session that ended
        early is fetched again and adopted by its content, not delivered twice. An
        account that keeps mail needs its messages recognised later: each is keyed
        by its ``TOP n 0`` header digest and LIST size
        (:func:`~popkeep.pop3.listing.identity_key`, `` #2`` for a second alike one),
        which costs one TOP per message on every poll. Messages without a size or a
        digest are left out and counted. Raises ServerRefused when the account keeps
        mail and the server has no TOP either.
        """
        numbers = range(1, stat.messages + 1)
        if not self._keeps_mail:
            import secrets  # here: only a server without UIDL needs it (≈ 3.6 M instructions)

            token = secrets.token_hex(8)
            self._numbers = {f"no-uidl {token} {n}": n for n in numbers}
            return Listing(stat.messages, stat.octets, self._numbers.keys())
        session = self._session
        if not session.offers_top:
            raise self._cannot_keep()
        sizes = await session.sizes(numbers, stat.messages)
        digests = await session.header_digests([n for n in numbers if n in sizes])
        if sizes and not digests:
            raise self._cannot_keep()  # TOP refused
        self._numbers = _identity_keys(numbers, sizes, digests)
        skipped = stat.messages - len(self._numbers)
        return Listing(stat.messages, stat.octets, self._numbers.keys(), skipped)

    def _cannot_keep(self) -> ServerRefused:
        host = self._session.settings.host
        return ServerRefused(
            f"{host} has neither UIDL nor TOP (both optional in RFC 1939 §7): popkeep "
            "cannot recognise its messages in a later session, so it cannot leave them "
            'on the server; set delete_after = "0s" for this account (collect and '
            "delete at once), or use a server that offers UIDL"
        )

    async def _tell_apart(
        self, shared: Mapping[str, list[int]], count: int
    ) -> tuple[dict[str, int], int]:
        """Keys for the messages that share a unique-id (RFC 1939 §7 forbids it;
        servers do it): each one's :func:`~popkeep.pop3.listing.identity_key` from
        its ``TOP n 0`` header digest and LIST size, so each is fetched, stored and
        deleted as itself, and recognised in later sessions. Returns (key → message
        number, how many could not be told apart: no size or no TOP for them, left
        out of the listing)."""
        numbers = sorted(n for group in shared.values() for n in group)
        sizes = await self._session.sizes(numbers, count)
        digests = await self._session.header_digests(numbers)
        keys: dict[str, int] = {}
        for uid, group in shared.items():
            keys.update(_identity_keys(sorted(group), sizes, digests, uid))
        return keys, len(numbers) - len(keys)

    async def describe(
        self, keys: Sequence[str], *, identify: bool = False, verify: bool = False
    ) -> list[ListedMessage]:
        """Sizes from LIST, in message-number order (the order RETR streams best);
        with ``identify``, each message's header digest from ``TOP n 0`` as its
        identity (None where the server has no TOP or refused it); with ``verify``,
        the content of those under a header key, by RETR (:meth:`_contents`). A
        message whose size the server does not tell consistently is left out."""
        numbers = sorted(self._numbers[key] for key in keys)
        sizes = await self._session.sizes(numbers, self._count) if numbers else {}
        digests = await self._session.header_digests(numbers) if identify else {}
        key_of = {self._numbers[key]: key for key in keys}
        contents = await self._contents(key_of, sizes) if verify else {}
        return [
            ListedMessage(key_of[number], sizes[number], digests.get(number),
                          contents.get(number))
            for number in numbers if number in sizes
        ]

    async def _contents(
        self, key_of: Mapping[int, str], sizes: Mapping[int, int]
    ) -> dict[int, str]:
        """The sha256 of each message whose key is its header digest and size
        (:func:`~popkeep.pop3.listing.identity_key`), by RETR: another message with the
        same header and size (another body) may have taken the place of the one
        collected, and only its content tells (docs/guarantees.md, "Servers without
        UIDL"). "" for one not retrieved (refused, or beyond ``max_message_size``)."""
        limit = self._session.settings.max_message_size
        numbers = [n for n, key in sorted(key_of.items()) if IDENTITY_PREFIX in key and n in sizes]
        contents = dict.fromkeys(numbers, "")
        wanted = [n for n in numbers if limit is None or sizes[n] <= limit]
        with contextlib.suppress(MessageError):  # raised after every other message
            async for number, message in self._session.retrieve(wanted):
                contents[number] = message.sha256
                message.close()
        return contents

    async def retrieve(self, keys: Sequence[str]) -> AsyncIterator[tuple[str, SpooledMessage]]:
        key_of = {self._numbers[key]: key for key in keys}
        try:
            async for number, message in self._session.retrieve(list(key_of)):
                yield key_of[number], message
        except MessageAborted as exc:
            exc.key = key_of.get(int(exc.key), exc.key)  # the session knows numbers only
            raise

    async def delete(self, keys: Sequence[str]) -> list[str]:
        key_of = {self._numbers[key]: key for key in keys}
        return [key_of[number] for number in await self._session.delete(list(key_of))]

    async def commit(self) -> bool:
        """QUIT: True only on +OK (RFC 1939 §6)."""
        return await self._session.quit()

    async def close(self) -> None:
        await self._session.close()

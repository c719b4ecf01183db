"""The one exception tree of popkeep.

Every error popkeep raises on purpose is a :class:`PopkeepError`. Foreign
exceptions (``OSError``, ``ssl.SSLError``, ``sqlite3.Error`` …) are translated at
the layer boundary that meets them (``raise X(...) from exc``) and never cross it.

Each class carries its consequence as class attributes, so callers decide from
the type and never by matching message strings:

- ``exit_code``: what ``popkeep`` exits with when this error ends the command;
- ``scope``: what the error spoils: one ``message``, one ``account`` run, or
  everything (``fatal``);
- ``retry``: whether the same run may succeed later without the user changing
  anything (a busy server, a dropped link) or not (a wrong password, a bad config);
- ``blame``: ``local`` (our config or machine) or ``remote`` (the server).

Every message passes through :func:`printable` (control characters escaped), so
an error that quotes a server is safe in every output: terminal, ``--json``, the
state database and ``status``.

Tree::

    PopkeepError
    ├── ConfigError                 local,  fatal,   fix the config       exit 78
    ├── TransportError              remote, account, retry                exit 75
    │   ├── ConnectError
    │   ├── NetworkTimeout
    │   └── TLSError                remote, account, no retry (verify/pin failed) exit 77
    │       ├── CertificateUntrusted    the chain or host name did not verify
    │       └── TLSMismatch         local: plain text where a TLS handshake was expected
    ├── ProtocolError               remote, account, retry
    │   ├── LocalProtocolError      local (we misused the codec: a bug)
    │   ├── RemoteProtocolError     the server broke RFC 1939
    │   └── LimitExceeded           a line/listing/session/progress bound was hit
    │       └── MessageAborted      one message grew past max_message_size mid-transfer
    ├── ServerError                 remote, account: an -ERR that ends the session
    │   ├── ServerBusy              retry: [IN-USE], [LOGIN-DELAY], [SYS/TEMP]
    │   └── ServerRefused           no retry: [SYS/PERM], unsupported command  exit 77
    ├── AuthError                   remote, account, no retry: fix credentials
    │   └── SignInRequired          the OAuth sign-in must be done again: `popkeep auth NAME`
    ├── SecurityError               local,  account, no retry: TLS required, not offered
    ├── DeliveryError               local,  account, retry: a sink could not store
    │   └── DeliveryRefused         no retry: the sink refused permanently
    │       └── MessageRefused      message: the sink refused this one message (too big …)
    ├── MessageError                remote, message: one message is skipped (too large …)
    ├── CannotCreate                local,  account, no retry: a local path cannot be made or
    │                               written (a file in the way, no permission, disk full) exit 73
    ├── StateError                  local,  fatal: the state store is unusable
    ├── AlreadyRunning              local,  account, retry: another fetch holds the account
    └── ServiceUnavailable          local,  fatal,   retry: no `popkeep serve` answers    exit 69
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:  # annotations only: every start imports this module (--version too)
    from popkeep.model import Receipt

Scope = Literal["message", "account", "fatal"]
Blame = Literal["local", "remote"]

EX_TEMPFAIL = 75
EX_CONFIG = 78
EX_SOFTWARE = 70
EX_NOPERM = 77
EX_CANTCREAT = 73
EX_UNAVAILABLE = 69


def printable(text: str) -> str:
    """``text`` as one line that is safe to print, store and put into JSON.

    The choke point for untrusted text (server replies quoted in errors): every
    character that is not printable — C0/C1 controls such as ESC, CR, LF and BEL,
    DEL, bidirectional overrides and other format characters, line separators —
    is replaced by its Python escape (``\\x1b``, ``\\u202e``), so a server cannot
    drive the terminal, forge a second log line or reorder what is shown.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class PopkeepError(Exception):
    """Base of every error popkeep raises on purpose."""

    exit_code: ClassVar[int] = 1
    scope: ClassVar[Scope] = "account"
    retry: ClassVar[bool] = False
    blame: ClassVar[Blame] = "local"
    #: One short hint telling the user what to do about it (shown after the reason);
    #: the class's, unless the raiser set a more specific one on the instance.
    hint: str = ""

    def __init__(self, message: str) -> None:
        message = printable(message)  # the text may quote a server (issue 16 item 4)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PopkeepError):
    """The configuration is invalid; the message names the file and key path."""

    exit_code = EX_CONFIG
    scope: ClassVar[Scope] = "fatal"
    hint = "fix the configuration"


class TransportError(PopkeepError):
    """The network failed: refused, reset, or closed early."""

    exit_code = EX_TEMPFAIL
    retry = True
    blame: ClassVar[Blame] = "remote"
    hint = "will retry on the next run"


class ConnectError(TransportError):
    """The TCP connection could not be established."""


class NetworkTimeout(TransportError):
    """The peer did not answer within the configured time."""


class TLSError(TransportError):
    """The TLS handshake failed or the certificate did not verify / match the pin."""

    exit_code = EX_NOPERM
    retry = False
    hint = "check ca_file / tls_fingerprint, or the server's certificate"


class CertificateUntrusted(TLSError):
    """The server's certificate did not verify: self-signed, an unknown CA, another
    host's name, expired. ``popkeep check`` reads it anyway (never sending a
    password over that connection) and shows the pin that would trust it."""

    hint = "if you trust it, `popkeep check ACCOUNT` shows the tls_fingerprint line that pins it"


class TLSMismatch(TLSError):
    """The account's ``tls`` does not match the port: the server answered in plain
    text where a TLS handshake was expected (``tls = "implicit"`` on a plain port)."""

    blame: ClassVar[Blame] = "local"
    hint = 'this port starts in plain text: set tls = "starttls" (or use the TLS port, 995)'


class ProtocolError(PopkeepError):
    """Somebody broke the POP3 protocol."""

    exit_code = EX_TEMPFAIL
    retry = True
    blame: ClassVar[Blame] = "remote"


class LocalProtocolError(ProtocolError):
    """We asked the codec for something illegal in its current state (a bug)."""

    exit_code = EX_SOFTWARE
    retry = False
    blame: ClassVar[Blame] = "local"


class RemoteProtocolError(ProtocolError):
    """The server sent bytes that are not valid POP3 (RFC 1939, RFC 2449)."""


class LimitExceeded(RemoteProtocolError):
    """A bound on line length, listing size, session time or transfer rate was exceeded."""


class MessageAborted(LimitExceeded):
    """One message's transfer was cut: it grew past ``max_message_size`` although its
    listed size did not (it never ends, or the server lies about its size). The
    session is spoiled; later runs leave that message on the server and report it,
    so the messages after it still arrive. ``key``: the message (the source sets it)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class ServerError(PopkeepError):
    """The server answered -ERR to a command the session needs."""

    exit_code = EX_TEMPFAIL
    blame: ClassVar[Blame] = "remote"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class ServerBusy(ServerError):
    """Temporary refusal: RFC 2449 [IN-USE], [LOGIN-DELAY], RFC 3206 [SYS/TEMP].

    ``retry_after``: seconds before the server allows the next login, when it said
    (the number in "[LOGIN-DELAY 600]", else its CAPA LOGIN-DELAY, RFC 2449 §6.5)."""

    retry = True
    hint = "the server asked us to come back later; will retry on the next run"

    def __init__(
        self, message: str, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code)
        self.retry_after = retry_after


class ServerRefused(ServerError):
    """Permanent refusal (RFC 3206 [SYS/PERM], a missing required capability)."""

    exit_code = EX_NOPERM
    hint = "the server cannot do what this account's configuration needs"


class AuthError(PopkeepError):
    """The server rejected the credentials (RFC 3206 [AUTH] or a plain -ERR)."""

    exit_code = EX_NOPERM
    blame: ClassVar[Blame] = "remote"
    hint = "check user and password for this account"


class SignInRequired(AuthError):
    """An OAuth 2.0 sign-in is needed before this account or sink can be used: there
    is no token yet, or the provider refused the refresh token (revoked, expired,
    the password changed; a Google app left in "Testing" loses it after 7 days).

    ``name`` is what ``popkeep auth`` takes; the message itself ends with the command
    (so every place that shows it, ``status`` and alerts too, names it). Like any
    AuthError, the service holds the account and sends the sign-in alert."""

    hint = ""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class SecurityError(PopkeepError):
    """Going on would break a security rule (e.g. password before TLS)."""

    exit_code = EX_NOPERM
    hint = "the server does not offer TLS; set tls = \"none\" only if you accept plaintext"


class DeliveryError(PopkeepError):
    """A sink could not store a message durably; nothing is deleted on the server.

    Raised by a sink's ``deliver(batch)``: ``delivered`` holds the receipts of the
    batch's leading messages that did become durable before the failure (in batch
    order), so the message that failed is ``batch[len(delivered)]``.
    """

    exit_code = EX_TEMPFAIL
    retry = True
    hint = "nothing was deleted on the server; will retry on the next run"

    def __init__(self, message: str, delivered: Sequence[Receipt] = ()) -> None:
        super().__init__(message)
        self.delivered: tuple[Receipt, ...] = tuple(delivered)


class DeliveryRefused(DeliveryError):
    """A sink refused a message permanently."""

    retry = False


class MessageRefused(DeliveryRefused):
    """The sink refused this one message permanently (too big, unparsable), not the
    account's mail in general: the rest of the batch is still delivered to it."""

    scope: ClassVar[Scope] = "message"
    hint = "the message stays on the server; see `popkeep retry` to try it again"


class MessageError(PopkeepError):
    """One message cannot be collected (too large, malformed listing); it stays on the server."""

    scope: ClassVar[Scope] = "message"
    blame: ClassVar[Blame] = "remote"


class CannotCreate(PopkeepError):
    """A local file or directory popkeep must create or write cannot be: a file where a
    directory should be, no permission, a read-only or full file system (sysexits.h
    EX_CANTCREAT). Not retried: the next run would fail the same way until the user acts.
    Nothing is deleted on the server."""

    exit_code = EX_CANTCREAT
    hint = "fix the path or its permissions, or free disk space; nothing was deleted"


class StateError(PopkeepError):
    """The state store is unreadable, locked or of an unknown schema version."""

    exit_code = EX_SOFTWARE
    scope: ClassVar[Scope] = "fatal"
    hint = "check the state database path and permissions"


class AlreadyRunning(PopkeepError):
    """Another popkeep process is collecting this account right now (cron overlap)."""

    exit_code = EX_TEMPFAIL
    retry = True
    hint = "another popkeep fetch is still running for it; this run skipped it"


class ServiceUnavailable(PopkeepError):
    """No running ``popkeep serve`` answers (``popkeep check-now``): none started, or
    it did not reply in time (sysexits.h EX_UNAVAILABLE)."""

    exit_code = EX_UNAVAILABLE
    scope: ClassVar[Scope] = "fatal"
    retry = True
    hint = "start it with popkeep serve, or run popkeep fetch once"


#: A run's outcome in words, by error class (the nearest class in this tree wins);
#: ``popkeep status`` and the service's account state show these.
OUTCOME_WORDS: dict[type[PopkeepError], str] = {
    SignInRequired: "sign in again (popkeep auth)",
    AuthError: "wrong password",
    ServerBusy: "server busy",
    ServerRefused: "refused by the server",
    ServerError: "server error",
    ConnectError: "connection refused or lost",
    NetworkTimeout: "server did not answer",
    TLSMismatch: "wrong tls setting for the port",
    CertificateUntrusted: "certificate not trusted",
    TLSError: "certificate not trusted",
    TransportError: "network error",
    SecurityError: "server offers no TLS",
    LimitExceeded: "server sent too much",
    LocalProtocolError: "internal error",
    ProtocolError: "server broke the protocol",
    DeliveryRefused: "delivery refused",
    DeliveryError: "delivery failed",
    MessageError: "a message was skipped",
    ConfigError: "configuration error",
    CannotCreate: "cannot write a local file",
    StateError: "state database error",
    AlreadyRunning: "another fetch was running",
    ServiceUnavailable: "popkeep serve did not answer",
    PopkeepError: "failed",
}


def outcome_words(outcome: str) -> str:
    """``"ok"``, or the stored error class name (``"AuthError"``) in words."""
    if outcome == "ok":
        return "ok"
    cls = globals().get(outcome)
    if isinstance(cls, type):
        for base in cls.__mro__:
            if base in OUTCOME_WORDS:
                return OUTCOME_WORDS[base]
    return outcome  # a class this popkeep does not know (a newer one wrote the state)

"""The configuration as frozen typed objects: what the rest of popkeep reads.

Owns: the shape of a valid configuration after conversion. Every value here is
already checked and normalised (paths expanded, durations in seconds, sizes in
octets), so no other layer validates config again. Must not: read files, touch
the environment, or resolve secrets (``load`` builds these objects;
:class:`~popkeep.config.secrets.SecretSource` resolves passwords on demand).

Sinks are a family of NamedTuples keyed by ``type`` (the word the user
writes). Adding a sink type means one NamedTuple and one converter registered in
``load.SINK_TYPES``; ``app`` maps the record's class to the implementation.
(NamedTuples, not dataclasses, throughout the configuration: generating a
dataclass's methods costs about a millisecond per class at every start.)
"""

from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from popkeep.config.secrets import SecretSource
from popkeep.model import RetentionPolicy

__all__ = [
    "AccountConfig",
    "AuthMode",
    "Config",
    "Connection",
    "Language",
    "MaildirSinkConfig",
    "OAuthConfig",
    "OAuthProvider",
    "ServiceConfig",
    "SinkConfig",
    "SourceType",
    "StateConfig",
    "TLSMode",
]

#: ``implicit``: TLS from the first byte (POP3S, port 995; RFC 8314 §3.3);
#: ``starttls``: plaintext greeting, then STLS (RFC 2595 §4) before any password;
#: ``none``: no TLS at all, only when the user writes it explicitly.
TLSMode = Literal["implicit", "starttls", "none"]

#: ``auto`` picks the best the server offers: SASL PLAIN (RFC 5034) when
#: advertised, else USER/PASS (RFC 1939 §7); ``apop`` is RFC 1939 §7 APOP.
#: ``oauth2``: an OAuth 2.0 access token over SASL, XOAUTH2 unless the server lists
#: only OAUTHBEARER (RFC 7628); ``xoauth2`` / ``oauthbearer`` name the mechanism.
AuthMode = Literal["auto", "user", "apop", "plain", "oauth2", "xoauth2", "oauthbearer"]

#: Who issues the OAuth 2.0 tokens: Google (google-auth) or Microsoft Entra (msal).
OAuthProvider = Literal["google", "microsoft"]
TokenStore = Literal["file", "keyring"]

#: ``[[account]] type``: which kind of source collects the account (``app`` maps
#: the word to its implementation).
SourceType = Literal["pop3"]


class OAuthConfig(NamedTuple):
    """``oauth = { provider = …, client_id = … }``: where an account's or a sink's
    OAuth 2.0 access token comes from (``popkeep auth NAME`` signs in once; the
    refresh token is kept in ``token_file`` (mode 0600) and used from then on).

    ``scopes`` follow from the provider and the protocol (Google
    ``https://mail.google.com/``; Microsoft ``…/POP.AccessAsUser.All`` or
    ``…/IMAP.AccessAsUser.All``). ``tenant`` is Microsoft's: ``consumers``
    (Outlook.com), ``organizations`` (work or school) or a tenant id.
    ``authority`` replaces the provider's sign-in server (https; plain http
    only to a loopback address, for the tests' fake server).
    """

    provider: OAuthProvider
    client_id: str
    scopes: tuple[str, ...]
    #: None only until ``load`` fills in the default, ``<state dir>/oauth/<owner>.json``
    token_file: Path | None = None
    client_secret: str | None = None
    tenant: str = "consumers"
    token_store: TokenStore = "file"  # noqa: S105 (a word, not a secret)
    authority: str | None = None
    #: who the tokens are for, as ``popkeep auth`` is told: ``account "isp"``, ``sink "central"``
    owner: str = ""


class Connection(NamedTuple):
    """How to reach one server and prove who we are: the record accounts and the
    IMAP and LMTP sinks share (one converter, :func:`popkeep.config.connection.connection`).

    ``tls_fingerprint`` is 64 lower-case hex digits (SHA-256 of the leaf
    certificate), without colons. ``user`` and ``secret`` are None where the
    protocol needs no login (LMTP); ``secret`` says where the password or token
    comes from and is resolved only when a session opens; with ``oauth`` the
    access token comes from that provider instead (``secret`` is then None).
    """

    host: str
    port: int
    tls: TLSMode
    ca_file: Path | None = None
    tls_fingerprint: str | None = None
    user: str | None = None
    secret: SecretSource | None = None
    #: OAuth 2.0 sign-in instead of ``secret`` (``auth = "oauth2"`` with an ``oauth`` table)
    oauth: OAuthConfig | None = None


class StateConfig(NamedTuple):
    """Where the state store lives: a SQLite file, or a PostgreSQL URL (one of the two)."""

    path: Path | None
    url: str | None = None


class SinkConfig(Protocol):
    """What every sink's settings have: the ``name`` accounts refer to.

    Each ``type`` word has its own NamedTuple: :class:`MaildirSinkConfig`
    here, the others in :mod:`popkeep.config.sink_types`. ``app`` picks the
    implementation from the record's class (a registry keyed by config class).
    """

    @property
    def name(self) -> str: ...

    @property
    def _fields(self) -> tuple[str, ...]:
        """The field names (every sink config is a NamedTuple)."""
        ...


class MaildirSinkConfig(NamedTuple):
    """``type = "maildir"``: a local Maildir (created if missing).

    ``path`` is the Maildir itself; ``folder`` selects the Maildir++ subfolder
    ``<path>/.<folder>`` (``"Provider.Sub"`` nests).
    """

    name: str
    path: Path
    folder: str | None = None
    #: prepend ``X-Popkeep-Account`` and a ``Received:`` line (off: bytes unchanged)
    trace_headers: bool = False


class AccountConfig(NamedTuple):
    """One POP3 mailbox (``type = "pop3"``, the default) to collect from, and what
    to leave on its server.

    Durations are float seconds; sizes are octets. ``server.user`` and
    ``server.secret`` are always set for an account.
    """

    name: str
    server: Connection
    auth: AuthMode
    sinks: tuple[str, ...]
    retention: RetentionPolicy
    max_message_size: int
    timeout: float
    connect_timeout: float
    session_timeout: float
    pipeline: int
    enabled: bool
    type: SourceType = "pop3"
    #: seconds between polls under ``popkeep serve``; None: ``[service] interval``
    interval: float | None = None


#: the languages of the messages popkeep writes into the user's mailbox (alerts)
Language = Literal["en", "ja"]


class ServiceConfig(NamedTuple):
    """``[service]``: how popkeep runs on its own and tells the user about trouble.

    ``alert_after`` is float seconds an account may fail before the user gets an
    alert in its central mailbox (docs/alerts.md); ``alerts = false`` sends none.
    The rest is how ``popkeep serve`` polls (docs/running.md), durations in float
    seconds.
    """

    alerts: bool = True
    alert_after: float = 12 * 3600.0
    language: Language = "en"
    #: the From: of alert messages (an RFC 5322 mailbox)
    alert_from: str = "popkeep <popkeep@localhost>"
    interval: float = 300.0  #: between two polls of an account (at least 60)
    #: each wait is moved by up to this fraction of itself, earlier or later, so
    #: that accounts started together drift apart
    jitter: float = 0.1
    concurrency: int = 4  #: accounts polled at the same time, at most
    backoff_cap: float = 3600.0  #: the longest wait after failed polls
    listen: str = "127.0.0.1:8025"  #: the status API's address, HOST:PORT
    #: the dashboard's and status API's password (HTTP Basic); required for a
    #: ``listen`` address that is not loopback (docs/dashboard.md)
    password: SecretSource | None = None


class Config(NamedTuple):
    """The whole configuration. ``warnings`` are shown to the user, not fatal."""

    path: Path
    state: StateConfig
    sinks: dict[str, SinkConfig]
    accounts: dict[str, AccountConfig]
    warnings: tuple[str, ...] = ()
    service: ServiceConfig = ServiceConfig()

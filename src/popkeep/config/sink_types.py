"""Frozen per-type configuration of the central-mailbox sinks, and their converters.

Owns: turning one ``[[sink]]`` TOML table of type ``imap``, ``lmtp``, ``mda``,
``mbox`` or ``gmail`` into a NamedTuple with the same :class:`~.convert.Keys`
and converters as every other table (one validator: unknown keys, key-path
errors, absolute paths); the IMAP and LMTP servers are the shared
:class:`~popkeep.config.schema.Connection` record. Must not: open files,
resolve secrets or touch the network (secrets stay
:class:`~popkeep.config.secrets.SecretSource` until a sink opens); the rules
that depend on the file itself (its mode) and on installed extras are ``load``'s.

Every converter has the shape ``convert(table, where) -> config`` where
``where`` is the prefix for messages, e.g. ``'config.toml: sink "central"'``;
:data:`CONVERTERS` maps the ``type`` word to its converter. Loaded on first
use of a non-Maildir sink (its records cost startup).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, NamedTuple

from popkeep.config import convert as cv
from popkeep.config.connection import (
    CONNECTION_KEYS,
    command_secret,
    connection,
)
from popkeep.config.convert import Keys, Where
from popkeep.config.schema import Connection, TLSMode
from popkeep.config.secrets import SecretSource

__all__ = [
    "CONVERTERS",
    "GmailSinkConfig",
    "ImapSinkConfig",
    "LmtpSinkConfig",
    "MboxSinkConfig",
    "MdaSinkConfig",
    "SinkTypeConfig",
    "gmail_sink",
    "imap_sink",
    "is_loopback",
    "lmtp_sink",
    "mbox_sink",
    "mda_sink",
]

#: ``oauth2``: an OAuth 2.0 access token over XOAUTH2 (Gmail's and Outlook's IMAP
#: both take it); ``xoauth2`` / ``oauthbearer`` (RFC 7628) name the mechanism.
ImapAuth = Literal["password", "oauth2", "xoauth2", "oauthbearer"]
DateSource = Literal["date_header", "retrieval"]
GmailDate = Literal["dateHeader", "receivedTime"]
_IMAP_AUTH: tuple[ImapAuth, ...] = ("password", "oauth2", "xoauth2", "oauthbearer")
_DATE_SOURCES: tuple[DateSource, ...] = ("date_header", "retrieval")
_GMAIL_DATES: tuple[GmailDate, ...] = ("dateHeader", "receivedTime")
#: The LMTP sink has no TLS yet (RFC 2033 §4.1 LHLO, no STARTTLS is sent).
_LMTP_TLS: tuple[TLSMode, ...] = ("none",)


class ImapSinkConfig(NamedTuple):
    """``type = "imap"``: APPEND to ``folder`` on an IMAP server.

    ``server.secret`` is the password (``auth = "password"``) or the OAuth token
    command; or ``server.oauth`` says where the OAuth tokens come from.
    """

    name: str
    server: Connection
    auth: ImapAuth = "password"
    folder: str = "INBOX"
    create_folder: bool = True
    flags: tuple[str, ...] = ()
    internaldate: DateSource = "date_header"
    timeout: float = 60.0
    trace_headers: bool = False


class LmtpSinkConfig(NamedTuple):
    """``type = "lmtp"``: LMTP (RFC 2033) to ``server`` (host:port) or a unix ``socket``."""

    name: str
    recipients: tuple[str, ...]
    server: Connection | None = None
    socket: Path | None = None
    sender: str = ""
    timeout: float = 60.0
    trace_headers: bool = False


class MdaSinkConfig(NamedTuple):
    """``type = "mda"``: pipe each message to ``command`` (no shell)."""

    name: str
    command: tuple[str, ...]
    timeout: float = 60.0
    trace_headers: bool = False


class MboxSinkConfig(NamedTuple):
    """``type = "mbox"``: append to an mboxrd file."""

    name: str
    path: Path
    lock_timeout: float = 30.0
    stale_lock: float = 300.0
    trace_headers: bool = False


class GmailSinkConfig(NamedTuple):
    """``type = "gmail"``: Gmail API ``users.messages.import``."""

    name: str
    labels: tuple[str, ...] = ("INBOX", "UNREAD")
    #: False (the default): imported mail goes through Gmail's spam classification, as
    #: mail Gmail received itself (and its retired POP fetcher) did; True skips it
    never_mark_spam: bool = False
    process_for_calendar: bool = False
    internal_date_source: GmailDate = "dateHeader"
    token_file: Path | None = None  #: authorized-user JSON written by ``popkeep auth``
    client_secret_file: Path | None = None
    oauth_token: SecretSource | None = None  #: ``oauth_token_command``
    api_endpoint: str = "https://gmail.googleapis.com"
    user_id: str = "me"
    max_retries: int = 6
    backoff: float = 1.0  #: first retry delay in seconds, doubled each time
    timeout: float = 120.0
    trace_headers: bool = False


SinkTypeConfig = ImapSinkConfig | LmtpSinkConfig | MdaSinkConfig | MboxSinkConfig | GmailSinkConfig


def _keys(table: Mapping[str, object], where: str, known: tuple[str, ...]) -> Keys:
    return Keys(dict(table), Where(where, nested=True), ("name", "type", *known))


def _timeout(keys: Keys, default: float) -> float:
    return keys.get("timeout", cv.positive_duration, default)


def imap_sink(table: Mapping[str, object], where: str) -> ImapSinkConfig:
    """``[[sink]] type = "imap"`` → :class:`ImapSinkConfig`.

    ``auth = "password"`` (the default) takes its secret from the password keys,
    the OAuth modes from an ``oauth`` table or ``oauth_token_command``; the other
    kind is refused (:func:`popkeep.config.connection.connection`).
    """
    keys = _keys(table, where, (*CONNECTION_KEYS, "auth", "folder",
                                "create_folder", "flags", "internaldate", "timeout",
                                "trace_headers"))  # fmt: skip
    auth = keys.get("auth", cv.choice(_IMAP_AUTH), _IMAP_AUTH[0])
    server = connection(keys, "imap", oauth=None if auth == "password" else auth)
    return ImapSinkConfig(
        name=keys.need("name", cv.to_name),
        server=server,
        auth=auth,
        folder=keys.get("folder", cv.to_string, "INBOX"),
        create_folder=keys.get("create_folder", cv.to_bool, True),
        flags=keys.get("flags", cv.string_list, ()),
        internaldate=keys.get("internaldate", cv.choice(_DATE_SOURCES), _DATE_SOURCES[0]),
        timeout=_timeout(keys, 60.0),
        trace_headers=keys.get("trace_headers", cv.to_bool, False),
    )


def lmtp_sink(table: Mapping[str, object], where: str) -> LmtpSinkConfig:
    """``[[sink]] type = "lmtp"`` → :class:`LmtpSinkConfig` (exactly one of host, socket).

    The sink speaks LMTP without TLS, so a ``host`` that is not this machine
    (a loopback address or ``localhost``) needs ``tls = "none"`` written out:
    every message would cross the network unencrypted.
    """
    keys = _keys(table, where, ("host", "port", "tls", "socket", "recipients", "sender",
                                "timeout", "trace_headers"))  # fmt: skip
    if keys.has("host") == keys.has("socket"):
        keys.where.fail("set exactly one of host, socket")
    server = None
    if keys.has("host"):
        server = connection(keys, "lmtp", modes=_LMTP_TLS, default_tls="none", login=False)
        if not keys.has("tls") and not is_loopback(server.host):
            keys.where.key("host").fail(
                f"{server.host} is not this machine, and LMTP sends every message "
                'unencrypted; write tls = "none" to accept that'
            )
    elif keys.has("port") or keys.has("tls"):
        keys.where.key("port" if keys.has("port") else "tls").fail("has no effect with socket")
    recipients = keys.need("recipients", cv.string_list)
    if not recipients:
        keys.where.key("recipients").fail("expected at least one address")
    return LmtpSinkConfig(
        name=keys.need("name", cv.to_name),
        recipients=recipients,
        server=server,
        socket=keys.get("socket", cv.absolute_path, None),
        sender=keys.get("sender", cv.to_string, ""),
        timeout=_timeout(keys, 60.0),
        trace_headers=keys.get("trace_headers", cv.to_bool, False),
    )


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); a name is not resolved."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mda_sink(table: Mapping[str, object], where: str) -> MdaSinkConfig:
    """``[[sink]] type = "mda"`` → :class:`MdaSinkConfig`."""
    keys = _keys(table, where, ("command", "timeout", "trace_headers"))
    if not keys.has("command"):
        keys.where.fail('missing required key "command" (like ["dovecot-lda", "-d", "me"])')
    return MdaSinkConfig(
        name=keys.need("name", cv.to_name),
        command=keys.need("command", cv.command),
        timeout=_timeout(keys, 60.0),
        trace_headers=keys.get("trace_headers", cv.to_bool, False),
    )


def mbox_sink(table: Mapping[str, object], where: str) -> MboxSinkConfig:
    """``[[sink]] type = "mbox"`` → :class:`MboxSinkConfig`."""
    keys = _keys(table, where, ("path", "lock_timeout", "stale_lock", "trace_headers"))
    return MboxSinkConfig(
        name=keys.need("name", cv.to_name),
        path=keys.need("path", cv.absolute_path),
        lock_timeout=keys.get("lock_timeout", cv.positive_duration, 30.0),
        stale_lock=keys.get("stale_lock", cv.positive_duration, 300.0),
        trace_headers=keys.get("trace_headers", cv.to_bool, False),
    )


_GMAIL_KEYS = (
    "labels", "never_mark_spam", "process_for_calendar", "internal_date_source", "token_file",
    "client_secret_file", "oauth_token_command", "api_endpoint", "user_id", "max_retries",
    "backoff", "timeout", "trace_headers",
)  # fmt: skip


def gmail_sink(table: Mapping[str, object], where: str) -> GmailSinkConfig:
    """``[[sink]] type = "gmail"`` → :class:`GmailSinkConfig` (a token source is required)."""
    keys = _keys(table, where, _GMAIL_KEYS)
    if keys.has("token_file") == keys.has("oauth_token_command"):
        keys.where.fail("set exactly one of token_file, oauth_token_command")
    endpoint = keys.get("api_endpoint", cv.to_string, "https://gmail.googleapis.com")
    return GmailSinkConfig(
        name=keys.need("name", cv.to_name),
        labels=keys.get("labels", cv.string_list, ("INBOX", "UNREAD")),
        never_mark_spam=keys.get("never_mark_spam", cv.to_bool, False),
        process_for_calendar=keys.get("process_for_calendar", cv.to_bool, False),
        internal_date_source=keys.get(
            "internal_date_source", cv.choice(_GMAIL_DATES), _GMAIL_DATES[0]
        ),
        token_file=keys.get("token_file", cv.absolute_path, None),
        client_secret_file=keys.get("client_secret_file", cv.absolute_path, None),
        oauth_token=command_secret(keys, "oauth_token_command"),
        api_endpoint=endpoint.rstrip("/"),
        user_id=keys.get("user_id", cv.to_string, "me"),
        max_retries=keys.get("max_retries", cv.int_between(0, 20), 6),
        backoff=keys.get("backoff", cv.positive_duration, 1.0),
        timeout=_timeout(keys, 120.0),
        trace_headers=keys.get("trace_headers", cv.to_bool, False),
    )


CONVERTERS: Mapping[str, Callable[[Mapping[str, object], str], SinkTypeConfig]] = {
    "imap": imap_sink,
    "lmtp": lmtp_sink,
    "mda": mda_sink,
    "mbox": mbox_sink,
    "gmail": gmail_sink,
}

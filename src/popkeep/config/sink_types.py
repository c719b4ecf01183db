"""Frozen per-type configuration of the central-mailbox sinks, and their converters.

Owns: turning one ``[[sink]]`` TOML table of type ``imap``, ``lmtp``, ``mda``,
``mbox`` or ``gmail`` into a NamedTuple, failing with a
:class:`~popkeep.errors.ConfigError` that names the file and key path. Unknown
keys are errors. Must not: open files, resolve secrets or touch the network
(secrets stay :class:`~popkeep.config.secrets.SecretSource` until a sink opens).

Every converter has the shape ``convert(table, where) -> config`` where
``where`` is the prefix for messages, e.g. ``'config.toml: sink "central"'``;
:data:`CONVERTERS` maps the ``type`` word to its converter.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, NamedTuple

from popkeep.config.secrets import SecretSource
from popkeep.errors import ConfigError

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
    "lmtp_sink",
    "mbox_sink",
    "mda_sink",
]

TLSMode = Literal["implicit", "starttls", "none"]
ImapAuth = Literal["password", "xoauth2", "oauthbearer"]
DateSource = Literal["date_header", "retrieval"]
_TLS_PORTS = {"implicit": 993, "starttls": 143, "none": 143}


class ImapSinkConfig(NamedTuple):
    """``type = "imap"``: APPEND to ``folder`` on an IMAP server."""

    name: str
    host: str
    user: str
    port: int = 993
    tls: TLSMode = "implicit"
    ca_file: Path | None = None
    password: SecretSource | None = None
    auth: ImapAuth = "password"
    oauth_token: SecretSource | None = None  #: ``oauth_token_command``
    folder: str = "INBOX"
    create_folder: bool = True
    flags: tuple[str, ...] = ()
    internaldate: DateSource = "date_header"
    timeout: float = 60.0
    trace_headers: bool = False


class LmtpSinkConfig(NamedTuple):
    """``type = "lmtp"``: LMTP (RFC 2033) to ``host:port`` or a unix ``socket``."""

    name: str
    recipients: tuple[str, ...]
    host: str | None = None
    port: int = 24
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
    never_mark_spam: bool = True
    process_for_calendar: bool = False
    internal_date_source: Literal["dateHeader", "receivedTime"] = "dateHeader"
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


class _Keys:
    """Takes typed values out of one table; :meth:`done` rejects the keys left over."""

    def __init__(self, table: Mapping[str, object], where: str) -> None:
        self._table = dict(table)
        self._where = where
        self._table.pop("type", None)

    def fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self._where}.{key}: expected {expected}")

    def has(self, key: str) -> bool:
        return key in self._table

    def str_(self, key: str, default: str | None = None) -> str:
        value = self._table.pop(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string")
        return value

    def opt_str(self, key: str) -> str | None:
        return self.str_(key) if key in self._table else None

    def bool_(self, key: str, default: bool) -> bool:
        value = self._table.pop(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = self._table.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= minimum:
            raise self.fail(key, f"a number greater than {minimum:g}")
        return float(value)

    def int_(self, key: str, default: int, low: int, high: int) -> int:
        value = self._table.pop(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"an integer from {low} to {high}")
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._table.pop(key, default)
        if value not in allowed:
            raise self.fail(key, "one of " + ", ".join(f'"{a}"' for a in allowed))
        return str(value)

    def strings(self, key: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        value = self._table.pop(key, default)
        if isinstance(value, tuple):
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "a list of non-empty strings")
        return tuple(value)

    def argv(self, key: str) -> tuple[str, ...] | None:
        """A command as a list, or a string split like a shell would (never run by one)."""
        if key not in self._table:
            return None
        value = self._table.pop(key)
        if isinstance(value, str):
            try:
                parts = tuple(shlex.split(value))
            except ValueError as exc:
                raise self.fail(key, f"a command line ({exc})") from exc
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            parts = tuple(value)
        else:
            raise self.fail(key, "a command: a string or a list of strings")
        if not parts or not parts[0]:
            raise self.fail(key, "a non-empty command")
        return parts

    def path(self, key: str) -> Path | None:
        return Path(self.str_(key)).expanduser() if key in self._table else None

    def command_secret(self, key: str) -> SecretSource | None:
        argv = self.argv(key)
        where = f"{self._where}.{key}"
        return None if argv is None else SecretSource("command", "", where, argv)

    def password(self) -> SecretSource | None:
        """``password`` | ``password_env`` | ``password_command``: at most one."""
        given = [k for k in ("password", "password_env", "password_command") if k in self._table]
        if len(given) > 1:
            raise ConfigError(f"{self._where}: set only one of {', '.join(given)}")
        if not given:
            return None
        key = given[0]
        if key == "password_command":
            return self.command_secret(key)
        kind: Literal["literal", "env"] = "literal" if key == "password" else "env"
        return SecretSource(kind, self.str_(key), f"{self._where}.{key}")

    def done(self) -> None:
        if self._table:
            unknown = ", ".join(sorted(self._table))
            raise ConfigError(f"{self._where}: unknown key(s): {unknown}")


def imap_sink(table: Mapping[str, object], where: str) -> ImapSinkConfig:
    """``[[sink]] type = "imap"`` → :class:`ImapSinkConfig`."""
    keys = _Keys(table, where)
    tls = keys.choice("tls", "implicit", ("implicit", "starttls", "none"))
    auth = keys.choice("auth", "password", ("password", "xoauth2", "oauthbearer"))
    config = ImapSinkConfig(
        name=keys.str_("name"),
        host=keys.str_("host"),
        user=keys.str_("user"),
        port=keys.int_("port", _TLS_PORTS[tls], 1, 65535),
        tls=tls,  # type: ignore[arg-type]
        ca_file=keys.path("ca_file"),
        password=keys.password(),
        auth=auth,  # type: ignore[arg-type]
        oauth_token=keys.command_secret("oauth_token_command"),
        folder=keys.str_("folder", "INBOX"),
        create_folder=keys.bool_("create_folder", True),
        flags=keys.strings("flags", ()),
        internaldate=keys.choice(  # type: ignore[arg-type]
            "internaldate", "date_header", ("date_header", "retrieval")
        ),
        timeout=keys.number("timeout", 60.0),
        trace_headers=keys.bool_("trace_headers", False),
    )
    keys.done()
    if config.auth == "password" and config.password is None:
        raise ConfigError(f"{where}: auth = \"password\" needs password, password_env "
                          "or password_command")
    if config.auth != "password" and config.oauth_token is None:
        raise ConfigError(f'{where}: auth = "{config.auth}" needs oauth_token_command')
    return config


def lmtp_sink(table: Mapping[str, object], where: str) -> LmtpSinkConfig:
    """``[[sink]] type = "lmtp"`` → :class:`LmtpSinkConfig` (exactly one of host, socket)."""
    keys = _Keys(table, where)
    config = LmtpSinkConfig(
        name=keys.str_("name"),
        recipients=keys.strings("recipients"),
        host=keys.opt_str("host"),
        port=keys.int_("port", 24, 1, 65535),
        socket=keys.path("socket"),
        sender=str(keys.opt_str("sender") or ""),
        timeout=keys.number("timeout", 60.0),
        trace_headers=keys.bool_("trace_headers", False),
    )
    keys.done()
    if (config.host is None) == (config.socket is None):
        raise ConfigError(f"{where}: set exactly one of host, socket")
    if not config.recipients:
        raise ConfigError(f"{where}.recipients: expected at least one address")
    return config


def mda_sink(table: Mapping[str, object], where: str) -> MdaSinkConfig:
    """``[[sink]] type = "mda"`` → :class:`MdaSinkConfig`."""
    keys = _Keys(table, where)
    name = keys.str_("name")
    command = keys.argv("command")
    if command is None:
        raise keys.fail("command", 'a command such as ["dovecot-lda", "-d", "me"]')
    config = MdaSinkConfig(
        name=name,
        command=command,
        timeout=keys.number("timeout", 60.0),
        trace_headers=keys.bool_("trace_headers", False),
    )
    keys.done()
    return config


def mbox_sink(table: Mapping[str, object], where: str) -> MboxSinkConfig:
    """``[[sink]] type = "mbox"`` → :class:`MboxSinkConfig`."""
    keys = _Keys(table, where)
    name = keys.str_("name")
    path = keys.path("path")
    if path is None:
        raise keys.fail("path", "the mbox file's path")
    config = MboxSinkConfig(
        name=name,
        path=path,
        lock_timeout=keys.number("lock_timeout", 30.0),
        stale_lock=keys.number("stale_lock", 300.0),
        trace_headers=keys.bool_("trace_headers", False),
    )
    keys.done()
    return config


def gmail_sink(table: Mapping[str, object], where: str) -> GmailSinkConfig:
    """``[[sink]] type = "gmail"`` → :class:`GmailSinkConfig` (a token source is required)."""
    keys = _Keys(table, where)
    config = GmailSinkConfig(
        name=keys.str_("name"),
        labels=keys.strings("labels", ("INBOX", "UNREAD")),
        never_mark_spam=keys.bool_("never_mark_spam", True),
        process_for_calendar=keys.bool_("process_for_calendar", False),
        internal_date_source=keys.choice(  # type: ignore[arg-type]
            "internal_date_source", "dateHeader", ("dateHeader", "receivedTime")
        ),
        token_file=keys.path("token_file"),
        client_secret_file=keys.path("client_secret_file"),
        oauth_token=keys.command_secret("oauth_token_command"),
        api_endpoint=keys.str_("api_endpoint", "https://gmail.googleapis.com").rstrip("/"),
        user_id=keys.str_("user_id", "me"),
        max_retries=keys.int_("max_retries", 6, 0, 20),
        backoff=keys.number("backoff", 1.0),
        timeout=keys.number("timeout", 120.0),
        trace_headers=keys.bool_("trace_headers", False),
    )
    keys.done()
    if (config.token_file is None) == (config.oauth_token is None):
        raise ConfigError(f"{where}: set exactly one of token_file, oauth_token_command")
    return config


CONVERTERS: Mapping[str, Callable[[Mapping[str, object], str], SinkTypeConfig]] = {
    "imap": imap_sink,
    "lmtp": lmtp_sink,
    "mda": mda_sink,
    "mbox": mbox_sink,
    "gmail": gmail_sink,
}

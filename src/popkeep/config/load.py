"""TOML → :class:`~popkeep.config.schema.Config`, with errors that name the file and key path.

Owns: reading the config file (stdlib ``tomllib``; nothing is ever ``eval``-ed),
the shape of the file (``[state]``, ``[service]``, ``[[sink]]``, ``[[account]]``), defaults,
cross-key rules (accounts name defined sinks; unique names), the rules of the
file itself (an inline password needs a private file; a file naming a secret
source or a command must not be writable by group or others), the extras a
configured sink needs being installed, warnings, and the sink-type registry
:data:`SINK_TYPES`. Value conversion lives in :mod:`.convert`, the shared
server record in :mod:`.connection`. Must not: resolve secrets (only
:meth:`SecretSource.resolve` does, on demand) or create files and directories.

Every path in the file, in every table, must be absolute or start with ``~``
(:func:`.convert.absolute_path`): a relative path would depend on the working
directory of whatever started popkeep (cron, a systemd timer, a shell).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from popkeep.config import convert as cv
from popkeep.config.connection import (
    CONNECTION_KEYS,
    OAUTH_KEYS,
    PASSWORD_KEYS,
    connection,
    password,
)
from popkeep.config.convert import Keys, Where
from popkeep.config.schema import (
    AccountConfig,
    AuthMode,
    Config,
    Connection,
    Language,
    MaildirSinkConfig,
    ServiceConfig,
    SinkConfig,
    SourceType,
    StateConfig,
)
from popkeep.errors import ConfigError
from popkeep.model import RetentionPolicy

__all__ = [
    "ACCOUNT_TYPES",
    "SINK_TYPES",
    "SinkConverter",
    "default_config_path",
    "default_state_path",
    "load_config",
    "parse_config",
]

T = TypeVar("T")

_AUTH_MODES: tuple[AuthMode, ...] = (
    "auto", "user", "apop", "plain", "oauth2", "xoauth2", "oauthbearer",
)
_OAUTH_MODES = frozenset({"oauth2", "xoauth2", "oauthbearer"})
_LANGUAGES: tuple[Language, ...] = ("en", "ja")
#: the ``[[account]] type`` words (the first is the default); ``app.SOURCE_BUILDERS``
#: maps each to its source
ACCOUNT_TYPES: tuple[SourceType, ...] = ("pop3",)
_MB = 1000**2


class _Context:
    """What conversion needs besides the data: file mode, environment; warnings found.

    (Plain classes here, not dataclasses: creating a dataclass costs about a
    millisecond at import, and startup time is measured.)
    """

    __slots__ = ("env", "file_mode", "source", "warnings")

    def __init__(self, source: str, file_mode: int | None, env: Mapping[str, str]) -> None:
        self.source = source
        self.file_mode = file_mode  #: st_mode of the file; None when not read from a file
        self.env = env
        self.warnings: list[str] = []

    def warn(self, where: Where, message: str) -> None:
        self.warnings.append(f"{where}: {message}")


# --------------------------------------------------------------------------- accounts

_ACCOUNT_KEYS = frozenset({
    "name", "type", *CONNECTION_KEYS, "auth", "sinks", "delete_after", "server_quota",
    "high_water", "low_water", "max_message_size", "timeout", "connect_timeout",
    "session_timeout", "pipeline", "enabled", "interval",
})  # fmt: skip


def _account(
    table: object, where: Where, ctx: _Context, sinks: Mapping[str, SinkConfig]
) -> AccountConfig:
    if not isinstance(table, dict):
        where.fail(f"expected a table, got {cv.show(table)}")
    name = Keys(table, where, table).need("name", cv.to_name)
    keys = Keys(table, Where.at(ctx.source, f'account "{name}"'), _ACCOUNT_KEYS)
    _check_table(table, keys.where, ctx)
    auth = keys.get("auth", cv.choice(_AUTH_MODES), _AUTH_MODES[0])
    account = AccountConfig(
        name=name,
        server=connection(keys, "pop3", oauth=auth if auth in _OAUTH_MODES else None),
        auth=auth,
        sinks=_account_sinks(keys, sinks),
        retention=_retention(keys),
        max_message_size=keys.get("max_message_size", cv.positive_size, 256 * _MB),
        timeout=keys.get("timeout", cv.positive_duration, 60.0),
        connect_timeout=keys.get("connect_timeout", cv.positive_duration, 30.0),
        session_timeout=keys.get("session_timeout", cv.positive_duration, 3600.0),
        pipeline=keys.get("pipeline", cv.int_between(1, 1024), 64),
        enabled=keys.get("enabled", cv.to_bool, True),
        type=keys.get("type", cv.choice(ACCOUNT_TYPES), ACCOUNT_TYPES[0]),
        interval=keys.get("interval", cv.poll_interval, None),
    )
    _check_record(account, keys.where, ctx)
    return account


def _account_sinks(keys: Keys, sinks: Mapping[str, SinkConfig]) -> tuple[str, ...]:
    """Named sinks must exist; without ``sinks`` the only defined sink is used."""
    if not keys.has("sinks"):
        if len(sinks) == 1:
            return tuple(sinks)
        if not sinks:
            keys.where.fail("no sink is defined; add a [[sink]] table")
        keys.where.fail(f'missing required key "sinks" (defined sinks: {", ".join(sinks)})')
    where = keys.where.key("sinks")
    names = keys.need("sinks", cv.string_list)
    if not names:
        where.fail("expected at least one sink name")
    for name in names:
        if name not in sinks:
            where.fail(f'unknown sink "{name}"{cv.suggest(name, sinks, "defined sinks")}')
    if len(set(names)) != len(names):
        where.fail("names a sink twice")
    return names


def _retention(keys: Keys) -> RetentionPolicy:
    """``delete_after`` (default never) plus optional quota marks, 0 < low < high ≤ 1."""
    delete_after = keys.get("delete_after", cv.retention_duration, None)
    quota = keys.get("server_quota", cv.positive_size, None)
    if quota is None:
        for key in ("high_water", "low_water"):
            if keys.has(key):
                keys.where.key(key).fail("only has an effect with server_quota")
        return RetentionPolicy(delete_after=delete_after)
    high = keys.get("high_water", cv.fraction, 0.9)
    low = keys.get("low_water", cv.fraction, 0.7)
    if not low < high:
        keys.where.key("low_water").fail(f"must be below high_water ({high:g}), got {low:g}")
    return RetentionPolicy(delete_after, quota, high, low)


# --------------------------------------------------------------------------- sinks

#: ``convert(table, where) -> config``: ``table`` is the whole ``[[sink]]`` table
#: (``name`` and ``type`` included and already checked), ``where`` the message
#: prefix ``'<file>: sink "<name>"'`` (rebuild with ``Where(where, nested=True)``).
SinkConverter = Callable[[Mapping[str, object], str], SinkConfig]


def maildir_sink(table: Mapping[str, object], where: str) -> MaildirSinkConfig:
    """``[[sink]] type = "maildir"`` → :class:`MaildirSinkConfig`."""
    keys = Keys(
        dict(table), Where(where, nested=True), ("name", "type", "path", "folder", "trace_headers")
    )
    return MaildirSinkConfig(
        name=keys.need("name", cv.to_name),
        path=keys.need("path", cv.absolute_path),
        folder=keys.get("folder", cv.maildir_folder, None),
        trace_headers=keys.get("trace_headers", cv.to_bool, False),
    )


def _lazy(function: str) -> SinkConverter:
    """A converter of :mod:`.sink_types`, imported on first use (its records cost startup)."""

    def convert(table: Mapping[str, object], where: str) -> SinkConfig:
        from popkeep.config import sink_types

        converter: SinkConverter = getattr(sink_types, function)
        return converter(table, where)

    return convert


#: The ``type`` word → its converter. Adding a sink type = adding one entry.
SINK_TYPES: dict[str, SinkConverter] = {
    "maildir": maildir_sink,
    "imap": _lazy("imap_sink"),
    "lmtp": _lazy("lmtp_sink"),
    "mda": _lazy("mda_sink"),
    "mbox": _lazy("mbox_sink"),
    "gmail": _lazy("gmail_sink"),
}


def _sink(table: object, where: Where, ctx: _Context) -> SinkConfig:
    if not isinstance(table, dict):
        where.fail(f"expected a table, got {cv.show(table)}")
    name = Keys(table, where, table).need("name", cv.to_name)
    where = Where.at(ctx.source, f'sink "{name}"')
    if "type" not in table:
        where.fail(f'missing required key "type" (one of: {", ".join(sorted(SINK_TYPES))})')
    kind = cv.to_string(table["type"], where.key("type"))
    if kind not in SINK_TYPES:
        where.key("type").fail(
            f'unknown sink type "{kind}"{cv.suggest(kind, SINK_TYPES, "known types")}'
        )
    _check_table(table, where, ctx)
    sink = SINK_TYPES[kind](table, str(where))
    _check_record(sink, where, ctx)
    return sink


# --------------------------------------------------------------------------- rules of the file

#: Keys that say where a secret comes from or name a command popkeep runs: a file
#: holding any of them must not be writable by group or others, who could point
#: the command elsewhere or send the password to their own server.
_GUARDED_KEYS = (*PASSWORD_KEYS, *OAUTH_KEYS, "token_file", "command")

#: What a record needs installed, by its class name: (module, extra), or None.
_EXTRAS: Mapping[str, Callable[[Any], tuple[str, str] | None]] = {
    "ImapSinkConfig": lambda _: ("imapclient", "imap"),
    "GmailSinkConfig": lambda sink: ("google.auth", "gmail") if sink.token_file else None,
}


#: What an ``oauth`` table needs installed, by provider: (module, extra).
_OAUTH_EXTRAS = {"google": ("google.oauth2", "oauth"), "microsoft": ("msal", "oauth")}


def _check_table(table: Mapping[str, object], where: Where, ctx: _Context) -> None:
    """The file's mode against what the table names (see :data:`_GUARDED_KEYS`)."""
    if ctx.file_mode is None:
        return
    mode = ctx.file_mode & 0o777
    if isinstance(table.get("password"), str) and mode & 0o077:
        where.key("password").fail(
            f"the file holds a password but its mode is {mode:04o}; "
            f"run chmod 600 {ctx.source}, or use password_command / password_env"
        )
    guarded = [key for key in _GUARDED_KEYS if key in table]
    if guarded and mode & 0o022:
        what = "a command popkeep runs" if guarded[0] == "command" else "where a secret comes from"
        where.key(guarded[0]).fail(
            f"the file says {what} but group or others may write it (mode {mode:04o}); "
            f"run chmod go-w {ctx.source}"
        )


def _check_record(record: Any, where: Where, ctx: _Context) -> None:
    """Rules every account and sink shares: warn on ``tls = "none"``; its extra installed."""
    server = getattr(record, "server", None)
    if isinstance(server, Connection) and server.tls == "none":
        if server.oauth is not None or getattr(record, "auth", "") in _OAUTH_MODES:
            ctx.warn(where.key("tls"), '"none" sends the access token and all mail unencrypted')
        elif server.secret is not None:
            ctx.warn(where.key("tls"), '"none" sends the password and all mail unencrypted')
    if isinstance(server, Connection) and server.secret is not None \
            and server.secret.kind == "keyring" and not _installed("keyring"):
        where.key("password").fail(
            "needs the Python package keyring, which is not installed: "
            "pip install 'popkeep[keyring]'"
        )
    need = _EXTRAS.get(type(record).__name__, lambda _: None)(record)
    if need is None and isinstance(server, Connection) and server.oauth is not None:
        need = _OAUTH_EXTRAS[server.oauth.provider]
    if need is not None and not _installed(need[0]):
        where.fail(
            f"needs the Python package {need[0].split('.')[0]}, which is not installed: "
            f"pip install 'popkeep[{need[1]}]'"
        )


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (only its parent package)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- state & file


def default_state_path(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/popkeep/state.db`` (XDG default ``~/.local/share``)."""
    return _xdg_dir(env, "XDG_DATA_HOME", ".local/share") / "popkeep" / "state.db"


def default_config_path(env: Mapping[str, str]) -> Path:
    """``$POPKEEP_CONFIG``, else ``$XDG_CONFIG_HOME/popkeep/config.toml`` (``~/.config``).

    ``-c/--config`` on the command line wins over both; the CLI handles that.
    """
    explicit = env.get("POPKEEP_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return _xdg_dir(env, "XDG_CONFIG_HOME", ".config") / "popkeep" / "config.toml"


def _xdg_dir(env: Mapping[str, str], variable: str, fallback: str) -> Path:
    # XDG Base Directory spec: a relative or empty value is invalid and ignored.
    value = env.get(variable, "")
    if value and Path(value).is_absolute():
        return Path(value)
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / fallback


def _state(table: object, where: Where, ctx: _Context) -> StateConfig:
    keys = Keys(table, where, ("path", "url"))
    if keys.has("path") and keys.has("url"):
        where.fail('expected "path" (SQLite) or "url" (PostgreSQL), not both')
    url = keys.get("url", cv.to_string, None)
    if url is not None:
        if not url.startswith(("postgresql://", "postgres://")):
            where.key("url").fail('expected a URL starting with "postgresql://"')
        return StateConfig(path=None, url=url)
    return StateConfig(path=keys.get("path", cv.absolute_path, default_state_path(ctx.env)))


def _service(table: object, where: Where, ctx: _Context) -> ServiceConfig:
    """``[service]``: alerts (docs/alerts.md), polling (docs/running.md), the
    dashboard's password (docs/dashboard.md); every key optional, but a ``listen``
    address beyond loopback needs a password."""
    allowed = (*(f for f in ServiceConfig._fields if f != "password"), *PASSWORD_KEYS)
    keys = Keys(table, where, allowed)
    _check_table(keys.table, where, ctx)
    default = ServiceConfig()
    secret = password(keys, required=False)
    listen = keys.get("listen", cv.listen_address, default.listen)
    if secret is None and keys.has("listen") and not _loopback(listen):
        where.key("listen").fail(
            f"{listen!r} is not a loopback address: other machines could reach the "
            "dashboard, so set a password first (password_command, password_env or "
            'password), or listen on "127.0.0.1:8025"'
        )
    return ServiceConfig(
        alerts=keys.get("alerts", cv.to_bool, default.alerts),
        alert_after=keys.get("alert_after", cv.positive_duration, default.alert_after),
        language=keys.get("language", cv.choice(_LANGUAGES), default.language),
        alert_from=keys.get("alert_from", _mailbox, default.alert_from),
        interval=keys.get("interval", cv.poll_interval, default.interval),
        jitter=keys.get("jitter", cv.fraction_below(0.5), default.jitter),
        concurrency=keys.get("concurrency", cv.int_between(1, 1000), default.concurrency),
        backoff_cap=keys.get("backoff_cap", cv.poll_interval, default.backoff_cap),
        listen=listen,
        password=secret,
    )


def _loopback(listen: str) -> bool:
    """``HOST:PORT`` names 127.0.0.0/8, ``::1`` or ``localhost``."""
    # only when [service] listen is set: fetch start-up is measured
    from popkeep.config.sink_types import is_loopback

    return is_loopback(listen.rpartition(":")[0].removeprefix("[").removesuffix("]"))


def _mailbox(value: object, where: Where) -> str:
    """An RFC 5322 mailbox (``name <local@domain>`` or ``local@domain``), one line."""
    # Imported only when the key is set: every `popkeep fetch` start-up is measured.
    from email.headerregistry import Address
    from email.utils import parseaddr

    text = cv.to_string(value, where)
    name, address = parseaddr(text)
    if "@" not in address or any(c in text for c in "\r\n"):
        where.fail(f'expected a mailbox like "popkeep <popkeep@example.org>", got {cv.show(value)}')
    local, _, domain = address.rpartition("@")
    return str(Address(name, local, domain))


def _array_of_tables(data: dict[str, object], key: str, where: Where) -> list[object]:
    value = data.get(key, [])
    if not isinstance(value, list):
        where.key(key).fail(f"expected [[{key}]] tables, got {cv.show(value)}")
    return value


def parse_config(
    data: Mapping[str, Any],
    source: str,
    *,
    file_mode: int | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Convert parsed TOML ``data`` into a Config; ``source`` names the file in errors.

    ``file_mode`` is the file's ``st_mode`` for the inline-password rule (None
    skips the rule); ``env`` (default ``os.environ``) supplies the XDG defaults.
    """
    ctx = _Context(source, file_mode, os.environ if env is None else env)
    top = Where(source)
    keys = Keys(dict(data), top, ("state", "service", "sink", "account"))
    state = _state(keys.table.get("state", {}), top.key("state"), ctx)
    service = _service(keys.table.get("service", {}), top.key("service"), ctx)
    sinks = _named(_array_of_tables(keys.table, "sink", top), "sink", ctx, _sink)

    def account(table: object, where: Where, ctx: _Context) -> AccountConfig:
        return _account(table, where, ctx, sinks)

    accounts = _named(_array_of_tables(keys.table, "account", top), "account", ctx, account)
    _warn_unused(sinks, accounts, ctx)
    oauth_dir = (state.path or default_state_path(ctx.env)).parent / "oauth"
    sinks = {n: _oauth_defaults(s, f'sink "{n}"', oauth_dir / f"sink-{n}.json")
             for n, s in sinks.items()}
    accounts = {n: _oauth_defaults(a, f'account "{n}"', oauth_dir / f"account-{n}.json")
                for n, a in accounts.items()}
    return Config(Path(source), state, sinks, accounts, tuple(ctx.warnings), service)


def _oauth_defaults(record: T, owner: str, token_file: Path) -> T:
    """``record`` with its ``oauth`` table's owner and default ``token_file`` filled in
    (``<state dir>/oauth/account-NAME.json`` / ``sink-NAME.json``); others unchanged."""
    server = getattr(record, "server", None)
    if not isinstance(server, Connection) or server.oauth is None:
        return record
    oauth = server.oauth._replace(owner=owner, token_file=server.oauth.token_file or token_file)
    replaced: T = record._replace(server=server._replace(oauth=oauth))  # type: ignore[attr-defined]
    return replaced


def _named(
    tables: list[object], kind: str, ctx: _Context, convert: Callable[[object, Where, _Context], T]
) -> dict[str, T]:
    """Convert each ``[[kind]]`` table (``kind #1`` … until its name is known); names are unique."""
    found: dict[str, T] = {}
    for number, table in enumerate(tables, start=1):
        item = convert(table, Where.at(ctx.source, f"{kind} #{number}"), ctx)
        name: str = getattr(item, "name")  # noqa: B009 - every config item has a name
        if name in found:
            Where.at(ctx.source, f'{kind} "{name}"').fail(f"duplicate name (another {kind} has it)")
        found[name] = item
    return found


def _warn_unused(
    sinks: Mapping[str, SinkConfig], accounts: Mapping[str, AccountConfig], ctx: _Context
) -> None:
    if not accounts:
        ctx.warn(Where(ctx.source), "no [[account]] is defined; there is nothing to collect")
        return
    used = {name for account in accounts.values() for name in account.sinks}
    for name in sinks:
        if name not in used:
            ctx.warn(Where.at(ctx.source, f'sink "{name}"'), "no account delivers to it")


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and convert the TOML file at ``path``. Every failure is a ConfigError naming it."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such file (create it, or pass -c/--config)") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, str(path), file_mode=mode, env=env)

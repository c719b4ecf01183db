"""Validation as conversion: the key-path plumbing and the value converters of the config.

Owns: :class:`Where` (a place in the file, for error messages), :class:`Keys`
(one TOML table; unknown keys are errors with a "did you mean"), and small
converters ``convert(value, where) -> typed value`` that raise ConfigError
``"<file>: <key path>: expected …, got …"``. Must not: know the shape of the
whole configuration (``load`` does), read files other than checking that a
``ca_file`` exists, or show a password in a message.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection
from datetime import timedelta
from pathlib import Path
from typing import NoReturn, TypeVar, cast

from popkeep.config import units
from popkeep.errors import ConfigError

__all__ = ["Converter", "Keys", "Where"]

T = TypeVar("T")
S = TypeVar("S", bound=str)
Converter = Callable[[object, "Where"], T]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_SECONDS = 10**9  #: about 31 years: longer than any timeout means a typo


class Where:
    """A place in the config file, shown as ``<file>`` or ``<file>: <key path>``.

    ``Where("config.toml").key("state").key("path")`` is ``config.toml: state.path``.
    Sink converters receive ``str(where)`` and may rebuild it with ``Where(text, nested=True)``.
    """

    __slots__ = ("nested", "text")

    def __init__(self, text: str, *, nested: bool = False) -> None:
        self.text = text
        self.nested = nested  #: whether ``text`` already has a key path after the file

    @classmethod
    def at(cls, source: str, path: str) -> Where:
        """The table at ``path`` (like ``account "isp"``) in file ``source``."""
        return cls(f"{source}: {path}", nested=True)

    def key(self, name: str) -> Where:
        """The place of ``name`` inside this table."""
        name = name if _BARE_KEY.fullmatch(name) else quote(name)
        return Where(f"{self.text}.{name}" if self.nested else f"{self.text}: {name}", nested=True)

    def fail(self, message: str) -> NoReturn:
        """Raise ConfigError ``"<file>: <key path>: <message>"``."""
        raise ConfigError(f"{self.text}: {message}")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Where({self.text!r})"


class Keys:
    """One TOML table under conversion. Unknown keys are rejected on construction."""

    def __init__(self, table: object, where: Where, known: Collection[str]) -> None:
        if not isinstance(table, dict):
            where.fail(f"expected a table, got {show(table)}")
        for key in table:
            if key not in known:
                where.key(key).fail(f"unknown key{suggest(key, known, 'known keys')}")
        self.table: dict[str, object] = table
        self.where = where

    def has(self, key: str) -> bool:
        return key in self.table

    def need(self, key: str, convert: Converter[T]) -> T:
        """The converted value of a required key."""
        if key not in self.table:
            self.where.fail(f'missing required key "{key}"')
        return convert(self.table[key], self.where.key(key))

    def get(self, key: str, convert: Converter[T], default: T) -> T:
        """The converted value of an optional key, or ``default`` (not converted)."""
        if key not in self.table:
            return default
        return convert(self.table[key], self.where.key(key))


def quote(text: str) -> str:
    """``text`` in double quotes, escaped and cut to 80 characters."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped[:77]}…"' if len(escaped) > 80 else f'"{escaped}"'


def show(value: object) -> str:
    """A value as the user wrote it, for error messages (never used on passwords)."""
    if isinstance(value, str):
        return quote(CONTROL.sub("?", value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def suggest(word: str, options: Collection[str], label: str | None) -> str:
    """`` (did you mean "x"?)``, else `` (<label>: a, b)`` (nothing if ``label`` is None).

    ``difflib`` is imported here, on the error path, to keep startup cheap.
    """
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1)
    if close:
        return f' (did you mean "{close[0]}"?)'
    return f" ({label}: {', '.join(sorted(options))})" if label else ""


def to_string(value: object, where: Where) -> str:
    """A non-empty string without control characters (CR/LF would inject commands)."""
    if not isinstance(value, str):
        where.fail(f"expected a string, got {show(value)}")
    if not value.strip():
        where.fail("must not be empty")
    if CONTROL.search(value):
        where.fail("must not contain control characters or line breaks")
    return value


def to_name(value: object, where: Where) -> str:
    """An account or sink name: safe on a command line, in logs and in the state store."""
    text = to_string(value, where)
    if not NAME.fullmatch(text):
        where.fail(
            f"expected a name of letters, digits and . _ - @ + (at most 64), got {show(text)}"
        )
    return text


def to_host(value: object, where: Where) -> str:
    """A host name or IP address (no brackets, spaces or slashes)."""
    text = to_string(value, where)
    if any(c.isspace() or c in "/[]" for c in text):
        where.fail(f"expected a host name or IP address, got {show(text)}")
    return text


def to_bool(value: object, where: Where) -> bool:
    """A TOML boolean (not 0/1, not "yes")."""
    if not isinstance(value, bool):
        where.fail(f"expected true or false, got {show(value)}")
    return value


def int_between(low: int, high: int) -> Converter[int]:
    """A converter accepting a TOML integer in ``[low, high]``."""

    def convert(value: object, where: Where) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            where.fail(f"expected a whole number from {low} to {high}, got {show(value)}")
        return value

    return convert


def fraction(value: object, where: Where) -> float:
    """A number in ``(0, 1]`` (quota water marks)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        where.fail(f"expected a number above 0 and at most 1 (like 0.9), got {show(value)}")
    return float(value)


def fraction_below(high: float) -> Converter[float]:
    """A converter accepting a number in ``[0, high]`` (``jitter``)."""

    def convert(value: object, where: Where) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
            where.fail(f"expected a number from 0 to {high:g} (like 0.1), got {show(value)}")
        return float(value)

    return convert


def choice(options: tuple[S, ...]) -> Converter[S]:
    """A converter accepting exactly one of ``options`` (the user's words)."""

    def convert(value: object, where: Where) -> S:
        for option in options:
            if value == option:
                return option
        listed = ", ".join(f'"{o}"' for o in options)
        hint = suggest(value, options, None) if isinstance(value, str) else ""
        where.fail(f"expected one of {listed}, got {show(value)}{hint}")

    return convert


def retention_duration(value: object, where: Where) -> timedelta | None:
    """``delete_after``: any duration including ``0s``, or ``never`` (None)."""
    try:
        return units.parse_duration(cast(str, value))
    except units.UnitError:
        where.fail(
            f'expected a duration like 14d, 36h, 90s, "0s" or "never", got {show(value)}'
        )


def positive_duration(value: object, where: Where) -> float:
    """A strictly positive, finite duration in float seconds (timeouts): a duration
    string (``"30s"``, ``"5m"``) or a TOML number of seconds (``60``, ``1.5``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if 0 < value < _MAX_SECONDS:
            return float(value)
        parsed = None
    else:
        try:
            parsed = units.parse_duration(cast(str, value))
        except units.UnitError:
            parsed = None
    if parsed is None or parsed <= timedelta(0):
        where.fail(
            "expected a duration above zero like 30s, 5m or 1h (or a number of seconds), "
            f"got {show(value)}"
        )
    return parsed.total_seconds()


#: the floor of ``interval``: polling a provider more often than once a minute buys
#: nothing and may get the account locked
MIN_INTERVAL = 60.0


def poll_interval(value: object, where: Where) -> float:
    """``interval`` (``[service]`` and per account): a duration of at least a minute."""
    seconds = positive_duration(value, where)
    if seconds < MIN_INTERVAL:
        where.fail(f"must be at least 1m (popkeep serve polls no more often), got {show(value)}")
    return seconds


def listen_address(value: object, where: Where) -> str:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6); port 0 lets the system choose."""
    text = to_string(value, where)
    host, _, port = text.rpartition(":")
    if not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        where.fail(f'expected HOST:PORT like "127.0.0.1:8025", got {show(value)}')
    return text


def positive_size(value: object, where: Where) -> int:
    """A strictly positive size in octets."""
    try:
        octets = units.parse_size(cast(str | int, value))
    except units.UnitError:
        octets = 0
    if octets <= 0:
        where.fail(
            f"expected a size above zero like 2GB, 100MB, 80KB or 1.5GiB, got {show(value)}"
        )
    return octets


def absolute_path(value: object, where: Where) -> Path:
    """An absolute path, ``~`` expanded; relative paths are refused."""
    path = Path(to_string(value, where)).expanduser()
    if not path.is_absolute():
        where.fail(f"expected an absolute path or one starting with ~, got {show(value)}")
    return path


def endpoint(value: object, where: Where) -> str:
    """An ``https://`` URL; plain ``http://`` only to a loopback address (a test server)."""
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    text = to_string(value, where).rstrip("/")
    url = urlsplit(text)
    if url.scheme == "https" and url.hostname:
        return text
    try:
        loopback = url.scheme == "http" and ip_address(url.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        where.fail(f"expected an https:// URL (http:// only to 127.0.0.1), got {show(text)}")
    return text


def existing_file(value: object, where: Where) -> Path:
    """An absolute path to a file that exists now."""
    path = absolute_path(value, where)
    if not path.is_file():
        where.fail(f"no such file: {path}")
    return path


def fingerprint(value: object, where: Where) -> str:
    """A SHA-256 certificate pin → 64 lower-case hex digits (``sha256:`` and colons dropped)."""
    digest = to_string(value, where).lower().removeprefix("sha256:").replace(":", "")
    if not _HEX64.fullmatch(digest):
        where.fail(f'expected "sha256:" and 64 hex digits (colons allowed), got {show(value)}')
    return digest


def command(value: object, where: Where) -> tuple[str, ...]:
    """A command line: a string split like a shell (no shell runs it) or an array of strings."""
    if isinstance(value, list):
        words = tuple(to_string(word, where) for word in value)
    else:
        try:
            words = tuple(shlex.split(to_string(value, where)))
        except ValueError as exc:
            where.fail(f"cannot split the command: {exc}")
    if not words:
        where.fail("expected a command, got an empty one")
    return words


def maildir_folder(value: object, where: Where) -> str:
    """A Maildir++ folder name without the leading dot: ``Provider``, ``Provider.Sub``."""
    text = to_string(value, where)
    if text.startswith(".") or text.endswith(".") or ".." in text or "/" in text:
        where.fail(f'expected a folder name like "Provider" or "Provider.Sub", got {show(text)}')
    return text


def string_list(value: object, where: Where) -> tuple[str, ...]:
    """A TOML array of non-empty strings."""
    if not isinstance(value, list):
        where.fail(f"expected an array of strings, got {show(value)}")
    return tuple(to_string(item, where) for item in value)

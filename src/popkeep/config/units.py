"""Durations and sizes in the user's vocabulary: ``14d``, ``36h``, ``2GB``, ``1.5GiB``.

Owns: parsing those strings into ``timedelta`` / ``int`` octets and formatting
them back for people. Pure functions of their arguments: no I/O, no clock, no
config file knowledge (the loader adds the file and key path to errors), so the
planner and the dashboard may use them too.

Duration grammar: one or more ``<number><unit>`` parts with no spaces, units
``s`` (seconds), ``m`` (minutes), ``h`` (hours), ``d`` (days), ``w`` (weeks);
e.g. ``90s``, ``15m``, ``36h``, ``14d``, ``2w``, ``1h30m``, ``1.5h``. ``0s`` is
zero; ``never`` means no limit and parses to ``None``. Units are lower case only
(``M`` could be read as months) and there is no month or year unit (their length
varies).

Size grammar: a non-negative number and an optional unit, case-insensitive,
optional space: ``B``; decimal ``KB`` = 1000, ``MB`` = 1000², ``GB``, ``TB``;
binary ``KiB`` = 1024, ``MiB`` = 1024², ``GiB``, ``TiB``. A plain int is octets.
Providers quote quotas in decimal units, hence ``KB`` = 1000. Fractions are
allowed as long as the result is a whole number of octets (``1.5GiB``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Context, Decimal

__all__ = [
    "UnitError",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_size",
]


class UnitError(ValueError):
    """A duration or size string could not be parsed (the loader turns it into ConfigError)."""


@cache
def _exact() -> Context:
    """Enough precision that every sum, product and quotient below is exact.

    ``decimal`` is imported on first use: a config that parses no duration or
    size (``"never"`` needs no arithmetic) does not pay for it at start-up."""
    from decimal import Context

    return Context(prec=200)


_MAX_TEXT = 64  #: longer inputs are refused before any arithmetic
_MAX_OCTETS = 2**63 - 1

_MICROS = {"w": 604_800_000_000, "d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000}
_MICROS_PER_S = 1_000_000
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")

_SI = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_BINARY = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_SIZE_UNITS = {"": 1, "b": 1, **_SI, **_BINARY}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_SI_NAMES = (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000))
_BINARY_NAMES = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def parse_duration(text: str) -> timedelta | None:
    """``"14d"`` → ``timedelta(days=14)``; ``"never"`` → ``None``.

    Raises :class:`UnitError` for anything else (negative, empty, unknown unit,
    spaces, a bare number). Results are exact to the microsecond.
    """
    if not isinstance(text, str):
        raise UnitError(f"expected a duration string, got {type(text).__name__}")
    if text == "never":
        return None
    if len(text) > _MAX_TEXT or not _DURATION_WHOLE.fullmatch(text):
        raise UnitError(f"not a duration: {text!r}")
    from decimal import Decimal

    micros = Decimal(0)
    for number, unit in _DURATION_PART.findall(text):
        part = _exact().multiply(Decimal(number), _MICROS.get(unit, _MICROS_PER_S))
        micros = _exact().add(micros, part)
    try:
        return timedelta(microseconds=int(micros.to_integral_value()))
    except OverflowError as exc:
        raise UnitError(f"duration too long: {text!r}") from exc


def format_duration(value: timedelta | None) -> str:
    """The shortest exact spelling: ``36h`` → ``"1d12h"``, ``None`` → ``"never"``.

    ``parse_duration(format_duration(x)) == x`` for every non-negative ``x``.
    Fractions of a second appear on the seconds part (``"1m0.25s"``).
    """
    from decimal import Decimal

    if value is None:
        return "never"
    micros = (value.days * 86_400 + value.seconds) * _MICROS_PER_S + value.microseconds
    if micros < 0:
        raise UnitError("negative durations have no spelling")
    if micros == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _MICROS.items():
        count, micros = divmod(micros, size)
        if count:
            parts.append(f"{count}{unit}")
    if micros:
        seconds = Decimal(micros) / _MICROS_PER_S
        parts.append(f"{_plain(seconds)}s")
    return "".join(parts)


def parse_size(value: str | int) -> int:
    """``"2GB"`` → 2_000_000_000, ``"1.5GiB"`` → 1_610_612_736, ``4096`` → 4096.

    Raises :class:`UnitError` for negatives, unknown units, or a fraction that is
    not a whole number of octets.
    """
    from decimal import Decimal

    if isinstance(value, bool):
        raise UnitError("expected a size, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"size must not be negative: {value}")
        return value
    if not isinstance(value, str):
        raise UnitError(f"expected a size, got {type(value).__name__}")
    match = _SIZE.fullmatch(value.strip().lower()) if len(value) <= _MAX_TEXT else None
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise UnitError(f"not a size: {value!r}")
    octets = _exact().multiply(Decimal(match.group(1)), _SIZE_UNITS[match.group(2)])
    if octets != octets.to_integral_value():
        raise UnitError(f"not a whole number of bytes: {value!r}")
    if octets > _MAX_OCTETS:
        raise UnitError(f"size too large: {value!r}")
    return int(octets)


def format_size(octets: int, *, exact: bool = False, binary: bool = False) -> str:
    """Octets for people: ``2_000_000_000`` → ``"2GB"``; ``1536, binary=True`` → ``"1.5KiB"``.

    By default rounds to three significant digits (``"1.23MB"``; binary
    units may then not parse back to a whole number of octets). With
    ``exact=True`` the text parses back to exactly ``octets``: it uses the
    largest unit that needs at most three decimals, else plain bytes (``"1234567B"``
    becomes ``"1234.567KB"``).
    """
    from decimal import Decimal

    if octets < 0:
        raise UnitError(f"size must not be negative: {octets}")
    names = _BINARY_NAMES if binary else _SI_NAMES
    if exact:
        return _format_size_exact(octets, names)
    for index, (name, size) in enumerate(names):
        value = Decimal(octets) / size
        if value < 1:
            continue
        shown = round(value, _decimals(value))
        if shown >= 1000 and index > 0:
            # 999_999 rounds to "1000KB": say "1MB" instead.
            bigger_name, bigger = names[index - 1]
            return f"{_plain(round(Decimal(octets) / bigger, 2))}{bigger_name}"
        return f"{_plain(shown)}{name}"
    return f"{octets}B"


def _format_size_exact(octets: int, names: tuple[tuple[str, int], ...]) -> str:
    from decimal import Decimal

    for name, size in names:
        value = _exact().divide(Decimal(octets), size)
        if value >= 1 and value == round(value, 3):
            return f"{_plain(value)}{name}"
    return f"{octets}B"


def _decimals(value: Decimal) -> int:
    """Decimals that keep three significant digits for a value in [1, 1000)."""
    if value >= 100:
        return 0
    return 1 if value >= 10 else 2


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros: ``Decimal("1.500")`` → ``"1.5"``."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text

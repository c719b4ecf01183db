"""Durations and sizes for the planner, over :mod:`popkeep.config.units`.

Owns: the planner's float-seconds view of the shared grammar ("14d", "never",
"80KB"; see ``popkeep.config.units``) and the translation of its ``UnitError``
into :class:`~popkeep.errors.ConfigError`. Must not: do I/O or define a second
grammar.
"""

from __future__ import annotations

import math

from popkeep.config.units import UnitError, format_size, parse_duration, parse_size
from popkeep.errors import ConfigError


def parse_seconds(text: str) -> float | None:
    """``"90s"``, ``"36h"``, ``"14d"``, ``"1d12h"`` → seconds; ``"never"`` → ``None``."""
    try:
        value = parse_duration(text.strip())
    except UnitError as exc:
        raise ConfigError(f"expected a duration like 90s, 36h, 14d or never, got {text!r}") from exc
    return None if value is None else value.total_seconds()


def parse_octets(text: str | int) -> int:
    """``"1GB"`` → 1_000_000_000, ``"80KiB"`` → 81920; an int is taken as octets."""
    try:
        return parse_size(text)
    except UnitError as exc:
        raise ConfigError(f"expected a size like 80KB, 1GB or 2GiB, got {text!r}") from exc


def format_seconds(seconds: float | None) -> str:
    """Whole seconds in days, hours, minutes and seconds (people set retention in days,
    so no weeks): 1209600 → ``"14d"``, 5400 → ``"1h30m"``; ``None``/``inf`` → ``"never"``.
    The text parses back with :func:`parse_seconds`."""
    if seconds is None or math.isinf(seconds):
        return "never"
    remaining = round(seconds)
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_octets(octets: float) -> str:
    """Three significant digits, decimal units: 1_234_567 → ``"1.23MB"``."""
    return format_size(max(0, round(octets)))

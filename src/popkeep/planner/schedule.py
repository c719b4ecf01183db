"""When things happen in a scenario: time points, check schedules and off periods.

Owns: turning the scenario's words into sorted float seconds since the start
(``t = 0`` is "day 1 00:00", the first day of the scenario). Must not: do I/O or
read the clock; the start date is always passed in.

Grammar (docs/planner.md has examples):

- time point: ``day N [HH:MM[:SS]]`` or ``YYYY-MM-DD[ HH:MM[:SS]]`` (relative to ``start``);
- checks: ``every DUR[, HH:MM-HH:MM][ from POINT]`` (a step within a daily window),
  ``daily HH:MM[, HH:MM …]``, or an explicit list ``POINT, POINT, …``;
- off period: ``POINT..POINT``; an end point without a time means the end of that day.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import date

from popkeep.errors import ConfigError
from popkeep.planner.model import DAY
from popkeep.planner.units import parse_seconds

_CLOCK = r"(\d{1,2}):(\d{2})(?::(\d{2}))?"
_DAY_POINT = re.compile(rf"^day\s+(\d+)(?:\s+{_CLOCK})?$", re.IGNORECASE)
_DATE_POINT = re.compile(rf"^(\d{{4}}-\d{{2}}-\d{{2}})(?:[ T]{_CLOCK})?$")
_TIME_OF_DAY = re.compile(rf"^{_CLOCK}$")
_EVERY = re.compile(
    rf"^every\s+([0-9.smhdw ]+?)(?:\s*,\s*{_CLOCK}\s*-\s*{_CLOCK})?(?:\s+from\s+(.+))?$",
    re.IGNORECASE,
)
_MAX_CHECKS = 2_000_000


def _clock(hours: str | None, minutes: str | None, seconds: str | None) -> tuple[float, bool]:
    """Seconds into the day and whether a time was given at all."""
    if hours is None:
        return 0.0, False
    h, m, s = int(hours), int(minutes or 0), int(seconds or 0)
    if h > 24 or m > 59 or s > 59 or (h == 24 and (m or s)):
        raise ConfigError(f"not a time of day: {hours}:{minutes}")
    return float(h * 3600 + m * 60 + s), True


def parse_point(text: str, start: date) -> tuple[float, bool]:
    """A time point → (seconds since ``start`` 00:00, whether a time of day was given)."""
    word = text.strip()
    if match := _DAY_POINT.match(word):
        day = int(match.group(1))
        if day < 1:
            raise ConfigError(f"days count from 1: {text!r}")
        tod, timed = _clock(*match.group(2, 3, 4))
        return (day - 1) * DAY + tod, timed
    if match := _DATE_POINT.match(word):
        try:
            when = date.fromisoformat(match.group(1))
        except ValueError as exc:
            raise ConfigError(f"not a date: {text!r}") from exc
        tod, timed = _clock(*match.group(2, 3, 4))
        return (when - start).days * DAY + tod, timed
    raise ConfigError(f"expected a time like 'day 3 09:15' or '2027-01-03 09:15', got {text!r}")


def parse_checks(text: str, start: date, horizon: float) -> tuple[float, ...]:
    """A check schedule → sorted check times in ``[0, horizon)``."""
    word = text.strip()
    if match := _EVERY.match(word):
        return _every(match, start, horizon)
    if word.lower().startswith("daily"):
        return _daily(word[5:], horizon)
    points = [parse_point(part, start)[0] for part in word.split(",") if part.strip()]
    if not points:
        raise ConfigError("expected a schedule like 'every 2h', 'daily 20:00' or 'day 1 09:00, …'")
    return tuple(sorted(t for t in points if 0 <= t < horizon))


def _every(match: re.Match[str], start: date, horizon: float) -> tuple[float, ...]:
    step = parse_seconds(match.group(1))
    if step is None or step <= 0:
        raise ConfigError(f"a check interval must be a positive duration, got {match.group(1)!r}")
    origin = parse_point(match.group(8), start)[0] if match.group(8) else 0.0
    if match.group(2) is None:
        _guard(horizon / step)
        count = max(0, int((horizon - origin) // step) + 1)
        return tuple(t for k in range(count) if 0 <= (t := origin + k * step) < horizon)
    first, _ = _clock(*match.group(2, 3, 4))
    last, _ = _clock(*match.group(5, 6, 7))
    if last < first or step > DAY:
        raise ConfigError("a daily window must run forward within one day (e.g. 07:00-23:00)")
    offsets: list[float] = []
    offset = first
    while offset <= last:
        offsets.append(offset)
        offset += step
    return _repeat_daily(offsets, horizon, origin)


def _daily(rest: str, horizon: float) -> tuple[float, ...]:
    offsets = []
    for part in re.split(r"[,\s]+", rest.strip()):
        match = _TIME_OF_DAY.match(part)
        if match is None:
            raise ConfigError(f"expected 'daily HH:MM[, HH:MM …]', got time {part!r}")
        offsets.append(_clock(*match.group(1, 2, 3))[0])
    return _repeat_daily(sorted(offsets), horizon, 0.0)


def _repeat_daily(offsets: Sequence[float], horizon: float, origin: float) -> tuple[float, ...]:
    days = int(horizon // DAY) + 1
    _guard(days * len(offsets))
    return tuple(
        t
        for day in range(days)
        for offset in offsets
        if origin <= (t := day * DAY + offset) < horizon
    )


def _guard(count: float) -> None:
    if count > _MAX_CHECKS:
        raise ConfigError(f"the schedule makes {count:.0f} checks; at most {_MAX_CHECKS} allowed")


def parse_off(text: str, start: date) -> tuple[float, float]:
    """``POINT..POINT`` → ``[begin, end)``; a date-only end covers its whole day."""
    begin_text, sep, end_text = text.partition("..")
    if not sep:
        raise ConfigError(f"expected an off period like '2027-01-01..2027-01-07', got {text!r}")
    begin, _ = parse_point(begin_text, start)
    end, timed = parse_point(end_text, start)
    end = end if timed else end + DAY
    if end <= begin:
        raise ConfigError(f"the off period {text!r} ends before it begins")
    return begin, end


def remove_off(
    checks: Sequence[float], periods: Iterable[tuple[float, float]]
) -> tuple[float, ...]:
    """The checks that fall outside every ``[begin, end)`` period."""
    keep = list(checks)
    for begin, end in periods:
        lo, hi = bisect_left(keep, begin), bisect_left(keep, end)
        del keep[lo:hi]
    return tuple(keep)


def format_point(seconds: float) -> str:
    """Seconds since the start → ``"day 15 09:15"`` (``day 1`` is the first day)."""
    whole = round(seconds)
    day, rest = divmod(whole, int(DAY))
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
    return f"day {day + 1} {clock}"

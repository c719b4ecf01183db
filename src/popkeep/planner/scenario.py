"""Scenario files: TOML → :class:`~popkeep.planner.model.Scenario`.

Owns: the scenario vocabulary (docs/planner.md), validation with key paths
(``scenario.toml: device[2].checks: …``), defaults. Unknown keys are errors.
:func:`scenario_from_dict` is pure (the start date is passed in); only
:func:`read_scenario` touches the file system.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from popkeep.errors import ConfigError
from popkeep.planner.model import DAY, Device, MailModel, Scenario
from popkeep.planner.schedule import parse_checks, parse_off, parse_point, remove_off
from popkeep.planner.units import parse_octets, parse_seconds

T = TypeVar("T")

_TOP = {"start", "seed", "horizon", "retention", "quota", "initial_usage", "mail", "messages",
        "device"}  # fmt: skip
_MAIL = {"per_day", "mean_size", "size_sigma"}
_DEVICE = {"name", "checks", "retention", "off", "collector"}
_MESSAGE = {"at", "size"}
DEFAULT_HORIZON = "180d"
DEFAULT_SIZE = "50KB"
COLLECTOR_CHECKS = "every 5m"
#: the most messages ``mail`` may bring over the horizon (as many as checks a
#: schedule may make): the simulation holds every one, and the dashboard's
#: Planner runs whatever its form asks
MAX_MESSAGES = 2_000_000


def read_scenario(path: Path) -> dict[str, Any]:
    """The raw TOML table of a scenario file (ConfigError naming the file on failure)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _at(key: str, convert: Callable[[Any], T], value: Any) -> T:
    """Run ``convert`` and prefix any ConfigError with the key path."""
    try:
        return convert(value)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc.message}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{key}: unexpected value {value!r}") from exc


def _unknown(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        known = ", ".join(sorted(allowed))
        raise ConfigError(f"{where}unknown key {extra[0]!r} (allowed: {known})")


def scenario_from_dict(raw: Mapping[str, Any], today: date, source: str = "scenario") -> Scenario:
    """Validate and convert a raw scenario table. ``today`` is day 1 unless ``start`` is set."""
    try:
        return _convert(raw, today)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from exc


def _convert(raw: Mapping[str, Any], today: date) -> Scenario:
    _unknown("", raw, _TOP)
    start = _at("start", lambda v: v if isinstance(v, date) else date.fromisoformat(v),
                raw.get("start", today))  # fmt: skip
    horizon = _at("horizon", _positive_duration, raw.get("horizon", DEFAULT_HORIZON))
    retention = _at("retention", _duration, raw.get("retention", "never"))
    mail = _mail(raw["mail"]) if "mail" in raw else None
    if mail is not None and not mail.per_day * horizon / DAY <= MAX_MESSAGES:
        raise ConfigError(f"mail: per_day {mail.per_day:g} over the horizon makes more than "
                          f"{MAX_MESSAGES} messages")
    default_size = mail.mean_size if mail else parse_octets(DEFAULT_SIZE)
    messages = _messages(raw["messages"], start, default_size) if "messages" in raw else None
    if mail is None and messages is None:
        raise ConfigError("give either mail = { per_day = … } or messages = [ … ]")
    devices = raw.get("device", [])
    if not isinstance(devices, list) or not devices:
        raise ConfigError("device: at least one [[device]] is needed")
    built = tuple(_device(f"device[{k + 1}]", d, start, horizon, retention)
                  for k, d in enumerate(devices))  # fmt: skip
    names = [d.name for d in built]
    if len(set(names)) != len(names):
        raise ConfigError(f"device: names must be unique, got {names}")
    return Scenario(
        horizon=horizon, devices=built, mail=mail if messages is None else None,
        messages=messages, quota=_at("quota", _size_or_none, raw.get("quota")),
        initial_usage=_at("initial_usage", parse_octets, raw.get("initial_usage", 0)),
        seed=_at("seed", int, raw.get("seed", 0)), start=start.isoformat(),
    )  # fmt: skip


def _duration(value: Any) -> float | None:
    if not isinstance(value, str):
        raise ConfigError(f"expected a duration string like \"14d\" or \"never\", got {value!r}")
    return parse_seconds(value)


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds is None or seconds <= 0:
        raise ConfigError(f"expected a positive duration, got {value!r}")
    return seconds


def _size_or_none(value: Any) -> int | None:
    return None if value is None or value == "none" else parse_octets(value)


def _mail(table: Any) -> MailModel:
    if not isinstance(table, dict):
        raise ConfigError("mail: expected a table like { per_day = 40, mean_size = \"80KB\" }")
    _unknown("mail: ", table, _MAIL)
    per_day = _at("mail.per_day", float, table.get("per_day", 0))
    sigma = _at("mail.size_sigma", float, table.get("size_sigma", 1.0))
    if per_day < 0 or sigma < 0:
        raise ConfigError("mail: per_day and size_sigma must be ≥ 0")
    size = _at("mail.mean_size", parse_octets, table.get("mean_size", DEFAULT_SIZE))
    return MailModel(per_day, max(size, 1), sigma)


def _messages(items: Any, start: date, default_size: int) -> tuple[tuple[float, int], ...]:
    if not isinstance(items, list):
        raise ConfigError("messages: expected a list like [\"day 1 08:00\", …]")
    out = []
    for k, item in enumerate(items):
        key = f"messages[{k + 1}]"
        if isinstance(item, dict):
            _unknown(f"{key}: ", item, _MESSAGE)
            at = _at(f"{key}.at", lambda v: parse_point(v, start)[0], item.get("at"))
            size = _at(f"{key}.size", parse_octets, item.get("size", default_size))
        else:
            at, size = _at(key, lambda v: parse_point(v, start)[0], item), default_size
        out.append((at, size))
    return tuple(out)


def _device(key: str, table: Any, start: date, horizon: float, retention: float | None) -> Device:
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected a table")
    _unknown(f"{key}: ", table, _DEVICE)
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.name: every device needs a name")
    collector = _at(f"{key}.collector", _bool, table.get("collector", False))
    spec = table.get("checks", COLLECTOR_CHECKS if collector else None)
    if not isinstance(spec, str):
        raise ConfigError(f"{key}.checks: expected a schedule like \"every 2h, 07:00-23:00\"")
    checks = _at(f"{key}.checks", lambda v: parse_checks(v, start, horizon), spec)
    off = table.get("off", [])
    periods = _at(f"{key}.off", lambda v: _off(v, start), off)
    own = retention
    if "retention" in table:
        own = _at(f"{key}.retention", _duration, table["retention"])
    return Device(name, remove_off(checks, periods), own, collector, spec)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {value!r}")
    return value


def _off(value: Any, start: date) -> list[tuple[float, float]]:
    items: Sequence[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError("expected a list like [\"2027-01-01..2027-01-07\"]")
    return [parse_off(str(item), start) for item in items]

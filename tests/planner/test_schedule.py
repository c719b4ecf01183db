"""Schedules and scenario files: the words users write, converted exactly."""

from __future__ import annotations

from datetime import date

import pytest

from popkeep.errors import ConfigError
from popkeep.planner.model import DAY
from popkeep.planner.scenario import scenario_from_dict
from popkeep.planner.schedule import (
    format_point,
    parse_checks,
    parse_off,
    parse_point,
    remove_off,
)

H = 3600.0
START = date(2027, 1, 1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("day 1", 0.0),
        ("day 1 09:00", 9 * H),
        ("day 18 20:00", 17 * DAY + 20 * H),
        ("2027-01-01 09:00", 9 * H),
        ("2027-01-18 20:00:30", 17 * DAY + 20 * H + 30),
        ("2026-12-31 23:00", -H),
    ],
)
def test_time_points(text: str, seconds: float) -> None:
    assert parse_point(text, START)[0] == seconds


@pytest.mark.parametrize("text", ["day 0", "tomorrow", "day 1 25:00", "2027-02-30", "09:00"])
def test_bad_time_points(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_point(text, START)


def test_every_with_a_daily_window() -> None:
    checks = parse_checks("every 2h, 07:00-23:00", START, 2 * DAY)
    hours = [7, 9, 11, 13, 15, 17, 19, 21, 23]
    assert checks == tuple(d * DAY + h * H for d in range(2) for h in hours)


def test_every_plain_and_from() -> None:
    assert parse_checks("every 18d", START, 40 * DAY) == (0.0, 18 * DAY, 36 * DAY)
    assert parse_checks("every 3d from day 2 10:00", START, 8 * DAY) == (
        DAY + 10 * H, 4 * DAY + 10 * H, 7 * DAY + 10 * H,
    )


def test_daily_and_explicit() -> None:
    twice = (8 * H, 20 * H, DAY + 8 * H, DAY + 20 * H)
    assert parse_checks("daily 08:00, 20:00", START, 2 * DAY) == twice
    assert parse_checks("day 18 20:00, day 1 09:00", START, 30 * DAY) == (9 * H, 17 * DAY + 20 * H)
    assert parse_checks("day 40 09:00", START, 30 * DAY) == ()  # beyond the horizon


@pytest.mark.parametrize("text", ["every 0s", "every 2h, 23:00-07:00", "every often", "weekly"])
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_checks(text, START, 10 * DAY)


def test_off_periods_cover_whole_days_and_remove_checks() -> None:
    assert parse_off("2027-01-02..2027-01-03", START) == (DAY, 3 * DAY)
    assert parse_off("day 2 12:00..day 3 08:00", START) == (DAY + 12 * H, 2 * DAY + 8 * H)
    checks = parse_checks("daily 20:00", START, 5 * DAY)
    kept = remove_off(checks, [parse_off("2027-01-02..2027-01-03", START)])
    assert kept == (20 * H, 3 * DAY + 20 * H, 4 * DAY + 20 * H)
    with pytest.raises(ConfigError):
        parse_off("day 3..day 2", START)


def test_format_point() -> None:
    assert format_point(14 * DAY + 9 * H + 15 * 60) == "day 15 09:15"
    assert format_point(5.0) == "day 1 00:00:05"


def test_the_issue_scenario_loads() -> None:
    raw = {
        "retention": "14d", "quota": "1GB", "horizon": "180d", "start": "2026-12-20",
        "mail": {"per_day": 40, "mean_size": "80KB", "size_sigma": 1.2},
        "device": [
            {"name": "phone", "checks": "every 2h, 07:00-23:00"},
            {"name": "desktop", "checks": "daily 20:00", "off": ["2027-01-01..2027-01-07"]},
            {"name": "laptop", "checks": "every 18d", "retention": "0s"},
            {"name": "popkeep", "collector": True},
        ],
    }
    sc = scenario_from_dict(raw, START)
    assert sc.quota == 1_000_000_000 and sc.horizon == 180 * DAY
    assert sc.mail is not None and sc.mail.mean_size == 80_000
    phone, desktop, laptop, popkeep = sc.devices
    assert phone.retention == 14 * DAY and laptop.retention == 0.0
    assert len(desktop.checks) == 180 - 7  # a week off
    assert popkeep.collector and popkeep.checks[1] == 300.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"retention": "fortnight"}, "retention: expected a duration"),
        ({"quota": "lots"}, "quota: expected a size"),
        ({"device": []}, "at least one [[device]]"),
        ({"device": [{"name": "a", "checks": "sometimes"}]}, "device[1].checks"),
        ({"device": [{"name": "a", "checks": "daily 09:00", "off": ["x"]}]}, "device[1].off"),
        ({"device": [{"name": "a", "checks": "daily 09:00"}] * 2}, "names must be unique"),
        ({"mail": {"per_day": 4, "speed": 1}}, "unknown key 'speed'"),
    ],
)
def test_scenario_errors_name_the_key(change: dict[str, object], message: str) -> None:
    raw = {"mail": {"per_day": 4}, "device": [{"name": "a", "checks": "daily 09:00"}], **change}
    with pytest.raises(ConfigError) as info:
        scenario_from_dict(raw, START, "my.toml")
    assert str(info.value).startswith("my.toml: ")
    assert message in str(info.value)

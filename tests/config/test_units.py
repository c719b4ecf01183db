"""Durations and sizes: tables of good and bad spellings, and round trips."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from popkeep.config.units import (
    UnitError,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("36h", timedelta(hours=36)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("0.25s", timedelta(milliseconds=250)),
        ("never", None),
    ],
)
def test_parse_duration(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2 weeks", "14", "14 d", "-1d", "14D", "1M", "1y", "d", "1.d", "never ", "Never",
     "1h 30m", "9" * 70 + "d", "99999999999w"],
)  # fmt: skip
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UnitError):
        parse_duration(text)


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(UnitError):
        parse_duration(14)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (None, "never"),
        (timedelta(hours=36), "1d12h"),
        (timedelta(days=14), "2w"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(seconds=60.25), "1m0.25s"),
    ],
)
def test_format_duration(value: timedelta | None, expected: str) -> None:
    assert format_duration(value) == expected


def test_format_duration_rejects_negative() -> None:
    with pytest.raises(UnitError):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)))
def test_duration_round_trip(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GB", 2_000_000_000),
        ("80KB", 80_000),
        ("100MB", 100_000_000),
        ("1.5GiB", 1_610_612_736),
        ("1KiB", 1024),
        ("2 gb", 2_000_000_000),
        ("1TB", 10**12),
        ("1TiB", 2**40),
        ("512", 512),
        ("512B", 512),
        ("0", 0),
        (4096, 4096),
        ("0.5KB", 500),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "value",
    ["", "2 gigs", "-1MB", "1.2345KB", "0.1B", "GB", "1e3", "1,000", -1, True, 1.5,
     "9" * 70, "99999999999TB"],
)  # fmt: skip
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(UnitError):
        parse_size(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("octets", "expected"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1KB"),
        (2_000_000_000, "2GB"),
        (1_234_567, "1.23MB"),
        (12_345_678, "12.3MB"),
        (123_456_789, "123MB"),
        (999_999, "1MB"),
    ],
)
def test_format_size_for_people(octets: int, expected: str) -> None:
    assert format_size(octets) == expected


def test_format_size_binary_and_exact() -> None:
    assert format_size(1536, binary=True) == "1.5KiB"
    assert format_size(1030, binary=True) == "1.01KiB"
    assert format_size(1023 * 1024 + 1000, binary=True) == "1MiB"
    assert format_size(1_234_567, exact=True) == "1234.567KB"
    assert format_size(1, exact=True) == "1B"
    assert format_size(1024**3 * 3 // 2, exact=True, binary=True) == "1.5GiB"


def test_format_size_rejects_negative() -> None:
    with pytest.raises(UnitError):
        format_size(-1)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.booleans())
def test_size_exact_round_trip(octets: int, binary: bool) -> None:
    assert parse_size(format_size(octets, exact=True, binary=binary)) == octets


@given(st.integers(min_value=1, max_value=10**15))
def test_size_for_people_is_close(octets: int) -> None:
    shown = parse_size(format_size(octets))
    assert abs(shown - octets) <= octets * 0.005

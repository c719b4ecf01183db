"""service.schedule: the next poll from how the last pass ended (pure)."""

from __future__ import annotations

import pytest

from popkeep.config.schema import AccountConfig, ServiceConfig
from popkeep.errors import (
    AlreadyRunning,
    AuthError,
    ConnectError,
    PopkeepError,
    ServerBusy,
)
from popkeep.service import schedule
from popkeep.service.loop import Service
from popkeep.service.model import ServiceView
from popkeep.sources.pop3 import capa_login_delay

SERVICE = ServiceConfig(interval=300, jitter=0.1, backoff_cap=3600)


@pytest.mark.parametrize(
    ("every", "streak", "cap", "wait"),
    [(300, 1, 3600, 600), (300, 3, 3600, 2400), (300, 4, 3600, 3600), (300, 60, 3600, 3600),
     (7200, 1, 3600, 7200),  # an interval above the cap: never more often than it
     (60, 1, 60, 60)],
)  # fmt: skip
def test_backoff_doubles_up_to_the_cap_never_below_the_interval(
    every: float, streak: int, cap: float, wait: float
) -> None:
    assert schedule.backoff(every, streak, cap) == wait


def test_jitter_never_takes_a_backoff_past_the_cap() -> None:
    account = _account()
    longest = schedule.after(ConnectError("x"), 10, account, SERVICE, lambda: 0.999999)
    assert longest.delay is not None and longest.delay <= 3600
    shortest = schedule.after(ConnectError("x"), 10, account, SERVICE, lambda: 0.0)
    assert shortest.delay == pytest.approx(3600 * 0.9)


@pytest.mark.parametrize(
    ("error", "streak", "phase", "delay", "after_streak"),
    [(None, 5, "waiting", 300, 0),
     (AlreadyRunning("held by cron"), 2, "waiting", 300, 2),  # not a failure
     (ConnectError("refused"), 0, "backing_off", 600, 1),
     (AuthError("[AUTH] no"), 0, "held", None, 1),
     (ServerBusy("[IN-USE]", "IN-USE"), 1, "server_delay", 1200, 2),
     (ServerBusy("[LOGIN-DELAY 900]", "LOGIN-DELAY", 900), 3, "server_delay", 900, 4),
     (ServerBusy("[LOGIN-DELAY 60]", "LOGIN-DELAY", 60), 0, "server_delay", 300, 1)],
)  # fmt: skip
def test_after_each_kind_of_ending(
    error: PopkeepError | None, streak: int, phase: str, delay: float | None, after_streak: int
) -> None:
    got = schedule.after(error, streak, _account(), SERVICE, lambda: 0.5)
    assert got == schedule.Next(phase, delay, after_streak)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "delay"),
    [(None, 900), (ConnectError("reset after login"), 900), (AuthError("[AUTH] no"), None),
     (ServerBusy("[LOGIN-DELAY 1800]", "LOGIN-DELAY", 1800), 1800)],
)  # fmt: skip
def test_the_servers_login_delay_is_the_least_wait(
    error: PopkeepError | None, delay: float | None
) -> None:
    """RFC 2449 §6.5: CAPA LOGIN-DELAY 900 makes every wait at least 900 s; a held
    account stays held, and a longer wait stays longer."""
    got = schedule.after(error, 0, _account(), SERVICE, lambda: 0.5, login_interval=900)
    assert got.delay == delay


def test_capa_login_delay_reads_capa_login_delay() -> None:
    assert capa_login_delay({"LOGIN-DELAY": ["900"]}) == 900
    assert capa_login_delay({"LOGIN-DELAY": ["900", "USER"]}) == 900
    assert capa_login_delay({"LOGIN-DELAY": []}) is None
    assert capa_login_delay({"LOGIN-DELAY": ["soon"]}) is None
    assert capa_login_delay({"IMAP4rev1": []}) is None


def as_view(service: Service) -> ServiceView:
    """Type-checked: the loop's Service is what the status API may ask."""
    return service


def _account() -> AccountConfig:
    from popkeep.config.load import parse_config

    config = parse_config(
        {"sink": [{"name": "m", "type": "maildir", "path": "/tmp/m"}],
         "account": [{"name": "a", "host": "h", "user": "u", "password_env": "P"}]},
        "test",
    )  # fmt: skip
    return config.accounts["a"]

"""The service loop against the scripted POP3 server, on a fake clock: days of
polling in seconds (issue 17: rhythm, backoff and recovery, LOGIN-DELAY and IN-USE
honoured, an AUTH failure stops polling, check-now, reload, the store's lock)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest

from popkeep.app import App, load_app
from popkeep.clock import FakeClock
from popkeep.collector import AccountResult
from popkeep.config.load import load_config
from popkeep.config.schema import AccountConfig
from popkeep.service.loop import Service
from popkeep.service.model import AccountState
from popkeep.state.filelock import FileLocks
from popkeep.testing import misbehaviour as mb
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..integration.helpers import account_toml, maildir_messages, save_config

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Seen(NamedTuple):
    """One finished pass as an observer saw it."""

    started: datetime  #: fake time the pass started
    ended: datetime  #: fake time the observer heard of it
    outcome: str
    state: AccountState


class Recorder:
    """A PassObserver that stops the service at ``until`` (fake time) or when
    ``stop_when`` says so, and may act after each pass (``then``)."""

    def __init__(self, clock: FakeClock, until: datetime) -> None:
        self.clock, self.until = clock, until
        self.passes: list[Seen] = []
        self.service: Service | None = None
        self.then: Callable[[Seen], None] = lambda seen: None

    async def pass_finished(
        self, account: AccountConfig, result: AccountResult, state: AccountState
    ) -> None:
        assert state.last_poll_at is not None
        seen = Seen(state.last_poll_at, self.clock.now(), result.summary.outcome, state)
        self.passes.append(seen)
        self.then(seen)
        if self.clock.now() >= self.until and self.service is not None:
            self.service.stop()

    def gaps(self) -> list[timedelta]:
        starts = [p.started for p in self.passes]
        return [b - a for a, b in itertools.pairwise(starts)]


def config_text(tmp_path: Path, server: ScriptedPOP3Server, service: str = "",
                names: tuple[str, ...] = ("isp",), extra: str = "") -> str:
    accounts = "".join(
        account_toml(name=name, port=server.port, user=server.user, password=server.password,
                     tls="none", extra=extra)
        for name in names
    )  # fmt: skip
    return (f'[state]\npath = "{tmp_path / "state.db"}"\n\n[service]\njitter = 0\n{service}\n'
            f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{tmp_path / "Maildir"}"\n'
            + accounts)


def start(tmp_path: Path, text: str, days: float) -> tuple[App, Service, Recorder]:
    clock = FakeClock(T0)
    app = load_app(save_config(tmp_path, text), clock=clock)
    recorder = Recorder(clock, T0 + timedelta(days=days))
    service = Service(app, observers=[recorder], random=lambda: 0.5, stop_grace=5)
    recorder.service = service
    return app, service, recorder


def run(app: App, service: Service, timeout: float = 60) -> None:
    async def main() -> None:
        await asyncio.wait_for(service.run(), timeout)

    try:
        asyncio.run(main())
    finally:
        app.close()


def test_each_account_is_polled_at_its_own_interval_for_a_week(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """One hour apart for seven days (and the new mail of the middle of the week is
    delivered at the next poll); the first poll collects the whole mailbox."""
    text = config_text(tmp_path, server, 'interval = "1h"\n')
    app, service, recorder = start(tmp_path, text, days=7)
    arrived: list[datetime] = []

    def mail_midweek(seen: Seen) -> None:
        if len(recorder.passes) == 84:
            server.mailbox.add(b"Subject: midweek\r\n\r\nhello\r\n", uid="midweek")
            arrived.append(seen.started)

    recorder.then = mail_midweek
    run(app, service)
    assert len(recorder.passes) == 7 * 24 + 1
    assert set(recorder.gaps()) == {timedelta(hours=1)}
    assert [p.outcome for p in recorder.passes] == ["ok"] * len(recorder.passes)
    assert recorder.passes[0].state.server_count == 12
    assert len(maildir_messages(tmp_path / "Maildir")) == 13
    assert recorder.passes[84].state.server_count == 13  # the next poll after it arrived
    assert len(server.sessions) == len(recorder.passes)


def test_an_accounts_own_interval_wins(tmp_path: Path, server: ScriptedPOP3Server) -> None:
    """Each next poll is the account's own interval after its pass ended, and comes
    then. (With two accounts, the fake clock moves on while one's pass runs.)"""
    text = config_text(tmp_path, server, 'interval = "1h"\n', names=("a", "b"))
    text = text.replace('name = "b"\n', 'name = "b"\ninterval = "3h"\n')
    app, service, recorder = start(tmp_path, text, days=2)
    run(app, service)
    every = {"a": timedelta(hours=1), "b": timedelta(hours=3)}
    for name in every:
        mine = [p for p in recorder.passes if p.state.name == name]
        assert len(mine) >= 5
        assert [p.state.next_poll_at for p in mine] == [p.ended + every[name] for p in mine]
        assert [p.started for p in mine[1:]] == [p.state.next_poll_at for p in mine[:-1]]


def test_six_accounts_on_six_intervals_each_polled_when_due_for_four_days(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """Passes that end together, as the fake clock is about to jump to the next
    deadline (it moves on while passes run, so counts vary), do not let it jump
    past a poll that just became due (seen as
    test_an_accounts_own_interval_wins failing under load: a poll 2 h late)."""
    names = tuple(f"a{i}" for i in range(1, 7))
    text = config_text(tmp_path, server, "concurrency = 6\n", names=names)
    for hours, name in enumerate(names, start=1):
        text = text.replace(f'name = "{name}"\n', f'name = "{name}"\ninterval = "{hours}h"\n')
    app, service, recorder = start(tmp_path, text, days=4)
    run(app, service)
    for name in names:
        mine = [p for p in recorder.passes if p.state.name == name]
        assert len(mine) >= 3, name
        assert [p.started for p in mine[1:]] == [p.state.next_poll_at for p in mine[:-1]], name


def test_jitter_moves_each_wait_within_its_fraction(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    text = config_text(tmp_path, server, 'interval = "10m"\n').replace("jitter = 0", "jitter = 0.2")
    app, service, recorder = start(tmp_path, text, days=0.5)
    draws = iter([0.0, 1.0, 0.25] * 100)
    service._random = lambda: next(draws)
    run(app, service)
    assert recorder.gaps()[:3] == [8 * MINUTE, 12 * MINUTE, 9 * MINUTE]


def test_failures_back_off_up_to_the_cap_and_recover_on_success(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """Interval 5m: 10m, 20m, 40m, then the 1h cap; one success brings back 5m."""
    text = config_text(tmp_path, server, 'interval = "5m"\nbackoff_cap = "1h"\n')
    app, service, recorder = start(tmp_path, text, days=1)
    server.misbehave = mb.Misbehaviour(greeting=b"-ERR maintenance")

    def recover(seen: Seen) -> None:
        if len(recorder.passes) == 7:
            server.misbehave = mb.Misbehaviour()
        if len(recorder.passes) == 10:
            recorder.service.stop()  # type: ignore[union-attr]

    recorder.then = recover
    run(app, service)
    assert [p.outcome for p in recorder.passes] == ["ServerError"] * 7 + ["ok"] * 3
    assert recorder.gaps() == [10 * MINUTE, 20 * MINUTE, 40 * MINUTE, 60 * MINUTE,
                               60 * MINUTE, 60 * MINUTE, 60 * MINUTE, 5 * MINUTE, 5 * MINUTE]
    failing = recorder.passes[6].state
    assert (failing.phase, failing.error_streak, failing.failing_since) == (
        "backing_off", 7, T0)
    assert failing.last_error is not None and "maintenance" in failing.last_error
    assert failing.last_outcome == "server error"
    healed = recorder.passes[7].state
    assert (healed.phase, healed.error_streak, healed.failing_since) == ("waiting", 0, None)
    assert healed.last_success_at == T0 + (10 + 20 + 40 + 4 * 60) * MINUTE


@pytest.mark.parametrize(
    ("error", "phase", "gap"),
    [(mb.LOGIN_DELAY, "server_delay", 10 * MINUTE),  # [LOGIN-DELAY 600]: not before
     (mb.IN_USE, "server_delay", 2 * MINUTE)],  # no delay said: backoff
)  # fmt: skip
def test_the_server_says_when_to_come_back(
    tmp_path: Path, server: ScriptedPOP3Server, error: bytes, phase: str, gap: timedelta
) -> None:
    """RFC 2449 §8.1: [LOGIN-DELAY n] and [IN-USE] are not retried before the server
    allows, though the interval is a minute; the account is "server_delay"."""
    text = config_text(tmp_path, server, 'interval = "1m"\n')
    app, service, recorder = start(tmp_path, text, days=1)
    server.misbehave = mb.Misbehaviour(auth_error=error)

    def enough(seen: Seen) -> None:
        if len(recorder.passes) == 2:
            recorder.service.stop()  # type: ignore[union-attr]

    recorder.then = enough
    run(app, service)
    assert recorder.gaps() == [gap]
    assert recorder.passes[0].state.phase == phase
    assert recorder.passes[0].state.next_poll_at == T0 + gap


def test_the_login_delay_a_server_advertises_is_kept_between_polls(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """RFC 2449 §6.5: a server whose CAPA says LOGIN-DELAY 900 is logged in to every
    15 minutes, though the interval is a minute (before, it was polled every minute
    and a real server would refuse most logins with -ERR [LOGIN-DELAY])."""
    server.capabilities = ("LOGIN-DELAY 900",)
    text = config_text(tmp_path, server, 'interval = "1m"\n')
    app, service, recorder = start(tmp_path, text, days=1 / 24)
    run(app, service)
    assert len(recorder.gaps()) >= 3 and set(recorder.gaps()) == {15 * MINUTE}
    assert {p.outcome for p in recorder.passes} == {"ok"}


def test_a_refused_password_holds_the_account_until_asked(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """[AUTH]: no more logins (that could get the account locked) for a whole day
    while another account goes on; check-now tries once more; a reload that does
    not change the account keeps the hold, one that changes it tries at once."""
    healthy = ScriptedPOP3Server(Mailbox(), user="hanako", password="hanako-pass")
    text = config_text(tmp_path, server, 'interval = "1h"\n') + account_toml(
        name="other", port=0, user="hanako", password="hanako-pass", tls="none")
    server.misbehave = mb.Misbehaviour(auth_error=mb.AUTH_FAILED)

    def isp() -> list[Seen]:
        return [p for p in recorder.passes if p.state.name == "isp"]

    async def scenario() -> None:
        task = asyncio.create_task(service.run())
        await wait_for(lambda: clock.now() >= T0 + timedelta(days=1))
        assert [p.outcome for p in isp()] == ["AuthError"]
        held = service.accounts()[0]
        assert (held.phase, held.next_poll_at, held.last_outcome, held.error_streak) == (
            "held", None, "wrong password", 1)
        with pytest.raises(ValueError, match="unknown account 'nope'"):
            service.check_now(["nope"])
        assert service.check_now(["isp"]) == ["isp"]
        await wait_for(lambda: len(isp()) == 2)
        assert isp()[1].state.phase == "held"

        service.reload(load_config(save_config(tmp_path, text)))  # the same account
        server.misbehave = mb.Misbehaviour()
        now = clock.now()
        await wait_for(lambda: clock.now() >= now + timedelta(days=1))
        assert len(isp()) == 2

        fixed = text.replace('name = "isp"\n', 'name = "isp"\ntimeout = "61s"\n')
        service.reload(load_config(save_config(tmp_path, fixed)))
        await wait_for(lambda: len(isp()) >= 3)  # then hourly: the clock runs on
        assert isp()[2].outcome == "ok" and isp()[2].state.phase == "waiting"
        service.stop()
        await task

    with ServerThread(healthy):
        text = text.replace("port = 0\n", f"port = {healthy.port}\n")
        app, service, recorder = start(tmp_path, text, days=100)
        clock = recorder.clock
        try:
            asyncio.run(asyncio.wait_for(scenario(), 60))
        finally:
            app.close()
    others = [p for p in recorder.passes if p.state.name == "other"]
    assert len(others) >= 48 and {p.outcome for p in others} == {"ok"}


def test_a_reload_during_a_pass_polls_again_with_the_new_settings_when_it_ends(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """The running pass used the old settings: the changed account is polled again as
    soon as it ends (not an interval or a backoff later), by the new ones."""
    text = config_text(tmp_path, server, 'interval = "1h"\n', extra='timeout = "1s"\n')
    server.misbehave = mb.Misbehaviour(silent=True)  # the pass waits for a greeting
    app, service, recorder = start(tmp_path, text, days=100)

    async def scenario() -> None:
        task = asyncio.create_task(service.run())
        await wait_for(lambda: len(server.sessions) == 1)  # the first pass is running
        server.misbehave = mb.Misbehaviour()
        service.reload(load_config(save_config(tmp_path, text.replace('"1s"', '"5s"'))))
        await wait_for(lambda: len(recorder.passes) >= 2)  # then hourly: the clock runs on
        service.stop()
        await task

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        app.close()
    first, second = recorder.passes[:2]
    assert (first.outcome, second.outcome) == ("NetworkTimeout", "ok")
    assert second.started == first.ended


async def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def test_an_account_another_process_collects_is_skipped_not_failed(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """A cron ``popkeep fetch`` beside the service holds the account's lock: the
    service skips that round (no session) and does not count a failure."""
    text = config_text(tmp_path, server, 'interval = "1h"\n')
    app, service, recorder = start(tmp_path, text, days=0.2)
    with FileLocks(tmp_path / "state.db").lock("isp") as held:
        assert held
        run(app, service)
    assert {p.outcome for p in recorder.passes} == {"AlreadyRunning"}
    assert {p.state.error_streak for p in recorder.passes} == {0}
    assert {p.state.phase for p in recorder.passes} == {"waiting"}
    assert server.sessions == []


def test_a_check_now_while_the_observers_run_polls_again_once_they_are_done(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """The observers run while the pass still holds the account (its alerts meet no
    other pass of it); a check-now that comes meanwhile (the pass's next poll is
    already set, an hour away) is not lost: the next poll follows at once."""
    text = config_text(tmp_path, server, 'interval = "1h"\n')
    app, service, recorder = start(tmp_path, text, days=0.5)

    def ask_once(seen: Seen) -> None:
        if len(recorder.passes) == 1:
            assert service.check_now(["isp"]) == ["isp"]

    recorder.then = ask_once
    run(app, service)
    assert recorder.passes[1].started == recorder.passes[0].ended
    assert recorder.passes[2].started - recorder.passes[1].ended == timedelta(hours=1)


def test_no_more_than_the_concurrency_at_once_and_every_account_polled(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    names = tuple(f"acct{n}" for n in range(5))
    text = config_text(tmp_path, server, 'interval = "1h"\nconcurrency = 2\n', names=names)
    app, service, recorder = start(tmp_path, text, days=0.1)
    running = most = 0
    collect = service._collect

    async def counted(account: AccountConfig, held: ExitStack) -> AccountResult:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await collect(account, held)
        finally:
            running -= 1

    service._collect = counted  # type: ignore[method-assign]
    run(app, service)
    assert {p.state.name for p in recorder.passes} == set(names)
    assert most == 2


def test_an_observer_that_fails_is_logged_and_polling_goes_on(
    tmp_path: Path, server: ScriptedPOP3Server, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def pass_finished(self, *args: object) -> None:
            raise RuntimeError("observer bug")

    text = config_text(tmp_path, server, 'interval = "1h"\n')
    app, service, recorder = start(tmp_path, text, days=0.5)
    service._observers = (Broken(), *service._observers)
    with caplog.at_level(logging.ERROR):
        run(app, service)
    assert len(recorder.passes) == 13
    assert "an observer of the pass failed" in caplog.text


def test_a_reload_that_moves_the_status_api_says_it_needs_a_restart(
    tmp_path: Path, server: ScriptedPOP3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """The status API listens where it did at start: a reload changing ``listen``
    says so (the accounts' changes still apply), one that does not stays quiet."""
    text = config_text(tmp_path, server, 'interval = "1h"\n')
    app, service, _ = start(tmp_path, text, days=1)
    try:
        with caplog.at_level(logging.WARNING):
            service.reload(load_config(save_config(tmp_path, text)))
            assert "take effect when popkeep serve restarts" not in caplog.text
            moved = text.replace('interval = "1h"\n', 'interval = "2h"\nlisten = "127.0.0.1:9"\n')
            service.reload(load_config(save_config(tmp_path, moved)))
    finally:
        app.close()
    assert ("reload: [service] listen and password take effect when popkeep serve "
            "restarts (the status API keeps 127.0.0.1:8025)") in caplog.text
    assert app.config.service.interval == 7200

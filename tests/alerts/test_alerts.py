"""Alerts end to end: the scripted server, a real Maildir, the state store and an
injected clock; a pass of popkeep, then the alerts observer, as the service runs them."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from popkeep.alerts.notify import Alerts
from popkeep.app import App
from popkeep.clock import FakeClock
from popkeep.collector.job import AccountResult
from popkeep.config import load_config
from popkeep.errors import StateError
from popkeep.model import RunSummary
from popkeep.state.base import Alert, StateStore
from popkeep.testing.certs import TestCerts
from popkeep.testing.misbehaviour import Misbehaviour
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import account_toml, fetch, save_config

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AUTH_FAILS = Misbehaviour(auth_error=b"[AUTH] invalid user name or password")
DOWN = Misbehaviour(greeting=b"-ERR [SYS/TEMP] down for maintenance")


def write(base: Path, server: ScriptedPOP3Server, certs: TestCerts,
          service: str = "", extra: str = "") -> Path:
    return save_config(base, (
        f'[service]\n{service}\n[state]\npath = "{base / "state.db"}"\n\n'
        f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{base / "Maildir"}"\n'
        + account_toml(port=server.port, user=server.user, password=server.password,
                       ca_file=certs.ca_file, extra=extra)
    ))  # fmt: skip


class Service:
    """Passes of one config, each followed by the alerts observer, on a fake clock."""

    def __init__(self, config: Path, clock: FakeClock) -> None:
        self.app = App(load_config(config), clock=clock)
        self.alerts = self.app.alerts()

    def poll(self) -> list[AccountResult]:
        async def run() -> list[AccountResult]:
            results = await self.app.fetch()
            for result in results:
                account = self.app.config.accounts[result.summary.account]
                await self.alerts.pass_finished(account, result)
            return results

        return asyncio.run(run())

    def close(self) -> None:
        self.app.close()


def alerts_in(maildir: Path) -> list[EmailMessage]:
    """The alert notices in the Maildir, oldest first."""
    found = []
    for path in [*maildir.glob("new/*"), *maildir.glob("cur/*")]:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if message["X-Popkeep-Alert"]:
            found.append(message)
    # Raised before cleared when both carry the same second (popkeep fetch: real time).
    return sorted(found, key=lambda m: (m["Date"].datetime, "cleared" in m["X-Popkeep-Alert"]))


def kinds(maildir: Path) -> list[str]:
    return [str(m["X-Popkeep-Alert"]) for m in alerts_in(maildir)]


def fail_for(service: Service, clock: FakeClock, hours: int) -> None:
    for _ in range(hours):
        clock.advance(timedelta(hours=1))
        [result] = service.poll()
        assert result.summary.outcome != "ok"


def test_failing_13_hours_raises_one_alert_and_success_one_recovery(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    service = Service(write(tmp_path, server, certs), clock)
    maildir = tmp_path / "Maildir"
    try:
        [first] = service.poll()
        assert first.summary.delivered == 12 and kinds(maildir) == []
        server.misbehave = DOWN
        fail_for(service, clock, 12)  # failing since T0+1h: 11 h at the 12th failure
        assert kinds(maildir) == []
        fail_for(service, clock, 1)  # 12 h: alert_after reached
        assert kinds(maildir) == ["failing; raised"]
        fail_for(service, clock, 5)  # more failing passes: no second one
        assert kinds(maildir) == ["failing; raised"]
        server.misbehave = Misbehaviour()
        clock.advance(timedelta(hours=1))
        service.poll()
        service.poll()
        assert kinds(maildir) == ["failing; raised", "failing; cleared"]
    finally:
        service.close()
    raised, cleared = alerts_in(maildir)
    assert raised["Subject"] == 'popkeep: account "isp" has been failing since 2026-12-01 10:00 UTC'
    assert raised["Date"].datetime == T0 + timedelta(hours=13)
    assert raised["From"] == "popkeep <popkeep@localhost>"
    assert raised["To"] == "taro@localhost"
    assert raised["Auto-Submitted"] == "auto-generated"
    body = raised.get_content()
    assert "down for maintenance" in body and "popkeep check isp" in body
    assert server.password not in body
    assert cleared["Subject"] == 'popkeep: account "isp" works again'
    assert raised["Message-ID"] != cleared["Message-ID"]


def test_japanese_alert_renders_and_headers_are_rfc2047(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    config = write(tmp_path, server, certs, 'language = "ja"\nalert_after = "2h"')
    service = Service(config, clock)
    server.misbehave = DOWN
    try:
        fail_for(service, clock, 3)
    finally:
        service.close()
    [path] = [*(tmp_path / "Maildir").glob("new/*")]
    raw = path.read_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head  # RFC 2047 encoded words
    [alert] = alerts_in(tmp_path / "Maildir")
    assert alert["Subject"] == (
        "popkeep: アカウント「isp」のメールを 2026-12-01 10:00 UTC から受信できていません"
    )
    assert alert.get_content_charset() == "utf-8"
    assert "popkeep check isp" in alert.get_content() and "対処方法" in alert.get_content()


def test_skipped_and_quota_alerts_raise_and_clear(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path
) -> None:
    """The demo mailbox holds 4.4 MB, one message of 4.3 MB. With a 4 MB quota and
    max_message_size 1 MB, popkeep delivers and deletes the small ones, and the big one
    stays above the high mark (3.6 MB) with nothing left to delete."""
    clock = FakeClock(T0)
    quota = 'server_quota = "4MB"\n'
    maildir = tmp_path / "Maildir"
    service = Service(write(tmp_path, server, certs, extra=quota + 'max_message_size = "1MB"'),
                      clock)  # fmt: skip
    try:
        [first] = service.poll()
        assert (first.summary.skipped, first.summary.deleted) == (1, 11)
        assert kinds(maildir) == ["skipped; raised"]  # quota: deleted some, unknown yet
        clock.advance(timedelta(minutes=5))
        service.poll()
        service.poll()
        assert kinds(maildir) == ["skipped; raised", "quota; raised"]
    finally:
        service.close()
    skipped, quota_alert = alerts_in(maildir)
    assert "larger than max_message_size" in skipped.get_content()
    assert "popkeep retry isp" in skipped.get_content()
    assert "4.3 MB / 4.0 MB (> 90%)" in quota_alert.get_content()
    clock.advance(timedelta(minutes=5))
    service = Service(write(tmp_path, server, certs, extra=quota), clock)  # the user's fix
    try:
        service.poll()  # delivers the big one, deletes it
        clock.advance(timedelta(minutes=5))
        service.poll()  # the mailbox is empty
    finally:
        service.close()
    assert kinds(maildir) == [
        "skipped; raised", "quota; raised", "skipped; cleared", "quota; cleared"
    ]


class _Crashing:
    """A store whose first ``alert_told`` fails: the notice is durable in the Maildir and
    not recorded as told, as if popkeep was killed between the two."""

    def __init__(self, store: StateStore) -> None:
        self.calls = 0
        original = store.alert_told

        def alert_told(alert: Alert, cleared: bool, now: datetime) -> None:
            self.calls += 1
            if self.calls == 1:
                raise StateError("simulated crash after the delivery")
            original(alert, cleared, now)

        store.alert_told = alert_told  # type: ignore[method-assign]


def test_a_notice_interrupted_before_its_record_is_not_delivered_twice(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    service = Service(write(tmp_path, server, certs, 'alert_after = "1h"'), clock)
    crash = _Crashing(service.app.store)
    server.misbehave = DOWN
    maildir = tmp_path / "Maildir"
    try:
        fail_for(service, clock, 2)  # raised and delivered; its record "crashed"
        assert crash.calls == 1
        [owed] = service.app.store.open_alerts("isp")
        assert owed.raised_sent_at is None  # still owed
        fail_for(service, clock, 1)  # the rerun finds the copy in the Maildir
        assert crash.calls == 2
        [told] = service.app.store.open_alerts("isp")
        assert told.raised_sent_at is not None
    finally:
        service.close()
    assert kinds(maildir) == ["failing; raised"]
    assert len([*maildir.glob("new/*")]) == 1


def test_alerts_false_sends_nothing(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    service = Service(write(tmp_path, server, certs, 'alerts = false\nalert_after = "1h"'),
                      clock)  # fmt: skip
    server.misbehave = AUTH_FAILS
    try:
        fail_for(service, clock, 3)
        assert service.app.store.open_alerts("isp") == []
    finally:
        service.close()
    assert not [*(tmp_path / "Maildir").glob("new/*")]


@pytest.mark.parametrize("language", ["en", "ja"])
def test_every_condition_has_words_in_every_language(language: str) -> None:
    from popkeep.alerts.conditions import CONDITIONS
    from popkeep.alerts.message import TEXTS

    for condition in CONDITIONS:
        for cleared in (False, True):
            assert (language, condition, cleared) in TEXTS


def test_alerts_is_the_services_pass_observer() -> None:
    """popkeep.alerts sits below app and cannot import popkeep.service (above it), so
    the seam is checked here: the same method, the same parameters, in order."""
    import inspect

    from popkeep.service.model import PassObserver

    ours = inspect.signature(Alerts.pass_finished).parameters
    seam = inspect.signature(PassObserver.pass_finished).parameters
    assert list(ours) == list(seam)
    assert inspect.iscoroutinefunction(Alerts.pass_finished)


def test_popkeep_fetch_raises_and_clears_alerts_too(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Cron users are those nobody tells: ``popkeep fetch`` settles alerts after its
    passes. The account failed 13 h ago already (a run on record); one more failing
    fetch raises the alert, a working one clears it."""
    from popkeep.state.sqlite import SQLiteStore

    config = write(tmp_path, server, certs)
    then = datetime.now(UTC) - timedelta(hours=13)
    store = SQLiteStore.open(tmp_path / "state.db")
    store.record_run(RunSummary("isp", then, then, "TransportError", "connection refused"))
    store.close()
    maildir = tmp_path / "Maildir"
    server.misbehave = DOWN
    code, data = fetch(config, capsys)
    assert code != 0 and kinds(maildir) == ["failing; raised"]
    code, data = fetch(config, capsys)
    assert kinds(maildir) == ["failing; raised"]
    server.misbehave = Misbehaviour()
    code, data = fetch(config, capsys)
    assert code == 0 and data["delivered"] == 12
    assert kinds(maildir) == ["failing; raised", "failing; cleared"]
    [raised, _] = alerts_in(maildir)
    assert then.strftime("%Y-%m-%d %H:%M UTC") in raised["Subject"]


def test_a_refused_sign_in_is_told_at_once_and_once(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path
) -> None:
    """The service holds an account whose sign-in is refused (no more passes until the
    config changes), so waiting for alert_after would never tell: signin is at once."""
    clock = FakeClock(T0)
    service = Service(write(tmp_path, server, certs), clock)
    maildir = tmp_path / "Maildir"
    server.misbehave = AUTH_FAILS
    try:
        fail_for(service, clock, 1)
        assert kinds(maildir) == ["signin; raised"]
        fail_for(service, clock, 13)  # a cron poll goes on trying: no second, no "failing"
        assert kinds(maildir) == ["signin; raised"]
        server.misbehave = Misbehaviour()
        clock.advance(timedelta(minutes=5))
        service.poll()
    finally:
        service.close()
    assert kinds(maildir) == ["signin; raised", "signin; cleared"]
    raised, _ = alerts_in(maildir)
    assert raised["Subject"] == 'popkeep: a sign-in for "isp" was refused'
    body = raised.get_content()
    assert "invalid user name or password" in body and "popkeep check isp" in body
    assert server.password not in body

"""Alerts from ``popkeep serve``'s loop (issue 17's test: "the alert message appears
once in the sink and a recovery message after the fix"), a day of polling on a fake
clock with the observer ``cli serve`` registers, App.alerts()."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from popkeep.app import load_app
from popkeep.clock import FakeClock
from popkeep.service.loop import Service
from popkeep.testing import misbehaviour as mb
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import save_config
from ..service.test_loop import T0, Recorder, Seen, config_text
from .test_alerts import alerts_in, kinds


def test_the_service_tells_once_after_alert_after_and_once_when_it_works_again(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    clock = FakeClock(T0)
    text = config_text(tmp_path, server, 'interval = "5m"\nbackoff_cap = "1h"\n')
    app = load_app(save_config(tmp_path, text), clock=clock)
    recorder = Recorder(clock, T0 + timedelta(days=2))
    service = Service(app, observers=[app.alerts(), recorder], random=lambda: 0.5,
                      stop_grace=5)  # fmt: skip
    recorder.service = service
    maildir = tmp_path / "Maildir"
    server.misbehave = mb.Misbehaviour(greeting=b"-ERR maintenance")
    told: list[list[str]] = []

    def watch(seen: Seen) -> None:
        told.append(kinds(maildir))
        if seen.ended - T0 >= timedelta(hours=14) and seen.outcome != "ok":
            server.misbehave = mb.Misbehaviour()  # the fix
        if seen.outcome == "ok" and len([p for p in recorder.passes if p.outcome == "ok"]) == 3:
            service.stop()

    recorder.then = watch

    async def main() -> None:
        await asyncio.wait_for(service.run(), 60)

    try:
        asyncio.run(main())
    finally:
        app.close()
    failed = [p for p in recorder.passes if p.outcome != "ok"]
    first_told = next(i for i, k in enumerate(told) if k)
    # Not before alert_after (12 h after the first failed pass at T0), then at once.
    assert recorder.passes[first_told].ended - T0 >= timedelta(hours=12)
    assert recorder.passes[first_told - 1].ended - T0 < timedelta(hours=12)
    assert len(failed) > first_told + 1  # failing passes went on after it: no second one
    assert kinds(maildir) == ["failing; raised", "failing; cleared"]
    raised, _ = alerts_in(maildir)
    assert "since 2026-12-01 09:00 UTC" in str(raised["Subject"])
    assert "maintenance" in raised.get_content()

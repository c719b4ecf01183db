"""The dashboard over a fake service view, served by uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

from popkeep.app import PlannedDeletion
from popkeep.model import RunSummary
from popkeep.service.dashboard import Dashboard
from popkeep.service.pages import Facts, Records
from popkeep.service.web import HttpServer, build_app
from popkeep.state.base import Alert, Refusal

from ..service.fakes import NOW, FakeView, ServedApi, state

TOKEN = "t0ken"

RUNS = [
    RunSummary("isp", NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), "ok", delivered=3),
    RunSummary("work", NOW - timedelta(minutes=3), NOW - timedelta(minutes=3), "ConnectError",
               error="connection refused by pop.work.example:995"),
]
RECORDS = Records(
    runs=RUNS,
    delivered={"isp": [NOW - timedelta(days=d, hours=1) for d in (0, 0, 1, 3, 3, 3)]},
    refusals={"isp": [Refusal("uid-9", "home", 52_000_000, "ab" * 32, "larger than 50 MB",
                              NOW - timedelta(hours=3))]},
    alerts=[Alert("work", "failing", NOW - timedelta(hours=1), NOW - timedelta(hours=13),
                  "connection refused"),
            Alert("isp", "quota", NOW - timedelta(days=2), NOW - timedelta(days=2),
                  "above 90 %", cleared_at=NOW - timedelta(days=1))],
    volume=(12.5, 64_000),
)
PLANNED = [
    PlannedDeletion("isp", "uid-1", 1200, NOW, "older than 14d", True),
    PlannedDeletion("isp", "uid-2", 3400, NOW + timedelta(days=2), "older than 14d", False),
]


def view() -> FakeView:
    return FakeView([
        state("isp", quota_octets=1_000_000, server_octets=950_000),
        state("work", phase="backing_off", last_outcome="connection refused or lost",
              last_error="connection refused by pop.work.example:995", error_streak=3,
              failing_since=NOW - timedelta(hours=2), server_count=None, server_octets=None),
    ])  # fmt: skip


class ServedDashboard(ServedApi):
    """:class:`~tests.service.fakes.ServedApi` with the dashboard's pages."""

    def __init__(self, fake: FakeView, password: str | None = None,
                 planned: Sequence[PlannedDeletion] = PLANNED, records: Records = RECORDS
                 ) -> None:  # fmt: skip
        async def upcoming() -> Sequence[PlannedDeletion]:
            return planned

        async def read(history: bool) -> Records:
            return records

        def facts() -> dict[str, Facts]:
            return {"isp": Facts(("home",), 1_000_000, 0.9, 0.7), "work": Facts(("home",), None,
                                                                               0.9, 0.7)}

        board = Dashboard(fake, upcoming, records=read, facts=facts, now=lambda: NOW, zone=UTC)
        app = build_app(fake, token=TOKEN, upcoming=upcoming, now=lambda: NOW, dashboard=board,
                        password=password)
        self._start(app)

    def _start(self, app: Any) -> None:
        import asyncio
        import threading

        self.server = HttpServer(app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = self._run(self.server.start("127.0.0.1", 0))

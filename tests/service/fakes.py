"""A fake ServiceView and the status API served from a thread, for the service's tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from popkeep.app import PlannedDeletion
from popkeep.service.model import AccountState
from popkeep.service.web import HttpServer, build_app

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def state(name: str, **changes: Any) -> AccountState:
    """An account that polled fine a minute ago and waits for its next poll."""
    base = AccountState(
        name=name, phase="waiting", next_poll_at=NOW + timedelta(minutes=4),
        last_poll_at=NOW - timedelta(minutes=1), last_outcome="ok", last_error=None,
        error_streak=0, failing_since=None, last_success_at=NOW - timedelta(minutes=1),
        server_count=12, server_octets=600_000, quota_octets=None,
    )
    return replace(base, **changes)


@dataclass
class FakeView:
    """A ServiceView whose accounts a test sets; remembers what check-now asked."""

    states: list[AccountState]
    asked: list[list[str]] = field(default_factory=list)

    def accounts(self) -> Sequence[AccountState]:
        return list(self.states)

    def check_now(self, names: Sequence[str] = ()) -> list[str]:
        known = [s.name for s in self.states]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown account {unknown[0]!r} (configured: {', '.join(known)})")
        self.asked.append(list(names))
        return list(names) or known

    def started_at(self) -> datetime:
        return NOW - timedelta(hours=1)


class ServedApi:
    """``build_app(view, …)`` served by :class:`HttpServer` on 127.0.0.1 in a thread."""

    def __init__(self, view: FakeView, planned: Sequence[PlannedDeletion] = (),
                 token: str = "t0ken", metrics: Any = None, password: str | None = None
                 ) -> None:  # fmt: skip
        async def upcoming() -> Sequence[PlannedDeletion]:
            return planned

        app = build_app(view, token=token, upcoming=upcoming, metrics=metrics, now=lambda: NOW,
                        password=password)
        self.server = HttpServer(app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = self._run(self.server.start("127.0.0.1", 0))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

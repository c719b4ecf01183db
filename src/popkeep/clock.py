"""Time, injected.

Every policy about a message and every moment of its life that popkeep records
(first retrieved, deleted, gone, a run's start and end) takes ``now`` from a
:class:`Clock` that ``app`` injects; :class:`FakeClock` lets tests move time by
hand. The SQLite store stamps journaled intents with the system time (their
order only; no decision reads it). Two sinks compare a file's age with ``time.time()`` instead:
the Maildir sink's clean-up of stale ``tmp/`` files and the mbox sink's test for a
stale dotlock. Those ages are measured against file modification times, which the
kernel stamps from the system clock, so a fake clock would make them wrong.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time (for records and policies) and a monotonic counter (for timeouts)."""

    #: whether :meth:`sleep_until` moves time instead of waiting (:class:`FakeClock`):
    #: then work in progress takes no time on it, and whoever waits for a deadline
    #: while work runs (the service's loop, during passes) waits for the work first
    jumps: bool

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once :meth:`monotonic` has reached ``deadline`` (a fake clock
        moves there at once; cancel the call to stop waiting)."""
        ...


class SystemClock:
    """The real clock."""

    jumps = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, deadline - time.monotonic()))


class FakeClock:
    """A clock that moves only when told to (like trio's MockClock)."""

    jumps = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep_until(self, deadline: float) -> None:
        """Let the other ready tasks run once, then jump to ``deadline``: a week of
        polling takes as many loop turns as it has waits."""
        import asyncio

        await asyncio.sleep(0)
        if deadline > self._mono:
            self.advance(deadline - self._mono)

    def advance(self, delta: timedelta | float) -> None:
        """Move both clocks forward by ``delta`` (seconds or a timedelta)."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("a FakeClock never goes backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

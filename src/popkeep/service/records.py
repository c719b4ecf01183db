"""What the dashboard reads from the state store and the configuration of a running service.

Owns: :class:`RecordReader`, the dashboard's read-only view of the store (each
account's last run and skipped messages; with ``history``, the recent runs, the
messages delivered in the last weeks, the alerts raised and cleared and the
measured mail volume), through the service's read-only connection
(:class:`~popkeep.service.api.StoreReader`, which reads the schedule too); and
the account settings the cards show (:meth:`RecordReader.facts`).

Must not: write to the store, import the web stack, or hold the records between
calls (every page shows the store as it is).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from popkeep.errors import ConfigError
from popkeep.planner.history import HistoryRecord, measure
from popkeep.service.pages import HISTORY_DAYS, Facts, Records

if TYPE_CHECKING:
    from datetime import datetime

    from popkeep.app import App
    from popkeep.service.api import StoreReader
    from popkeep.state.base import StateStore

#: runs listed on the History page
RECENT = 50


class RecordReader:
    """The store of ``app`` (its current configuration: a reload is followed), read-only
    through ``reader``."""

    def __init__(self, app: App, reader: StoreReader) -> None:
        self._app, self._reader = app, reader

    def facts(self) -> dict[str, Facts]:
        """Every configured account's sinks and quota marks."""
        return {name: Facts(a.sinks, a.retention.server_quota, a.retention.high_water,
                            a.retention.low_water)
                for name, a in self._app.config.accounts.items()}  # fmt: skip

    async def records(self, history: bool = False) -> Records:
        app = self._app
        return await self._reader.read(lambda store: read_records(
            store, list(app.config.accounts), app.clock.now(), history))


def read_records(store: StateStore, accounts: list[str], now: datetime, history: bool) -> Records:
    """The records of ``accounts`` (see the module docstring)."""
    last = [run for name in accounts for run in store.runs(name, limit=1)]
    refusals = {name: store.refusals(name) for name in accounts}
    if not history:
        return Records(last, {}, refusals, (), None)
    since = now - timedelta(days=HISTORY_DAYS + 1)
    delivered: dict[str, list[datetime]] = {}
    everything: list[HistoryRecord] = []
    for name in accounts:
        records = store.delivered_history(name)
        everything += [HistoryRecord(*r) for r in records]
        delivered[name] = [r.first_retrieved_at for r in records if r.first_retrieved_at >= since]
    alerts = sorted((alert for name in accounts for alert in store.recent_alerts(name, RECENT)),
                    key=lambda a: a.raised_at, reverse=True)[:RECENT]
    runs = store.runs(None, limit=RECENT)
    return Records(runs or last, delivered, refusals, alerts, _volume(everything))


def _volume(records: list[HistoryRecord]) -> tuple[float, int] | None:
    try:
        mail = measure(records).mail
    except ConfigError:  # nothing delivered yet
        return None
    return mail.per_day, mail.mean_size


__all__ = ["RECENT", "RecordReader", "read_records"]

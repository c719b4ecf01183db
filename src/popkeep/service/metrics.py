"""``/metrics``: per-account counters and gauges in the Prometheus text format.

Owns: :class:`Metrics`, a :class:`~popkeep.service.model.PassObserver` that turns
each finished pass into prometheus-client counters and gauges in its **own**
``CollectorRegistry`` (never the process-wide default one, so two services in
one process, or a test, never share series). The only module that imports
``prometheus_client``.

Must not: do I/O or decide anything; what a pass did comes from its summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

if TYPE_CHECKING:
    from popkeep.collector import AccountResult
    from popkeep.config.schema import AccountConfig
    from popkeep.service.model import AccountState

#: The media type of :meth:`Metrics.exposition` (the Prometheus text format).
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The service's metrics; :meth:`pass_finished` after every pass."""

    def __init__(self, accounts: Iterable[AccountConfig] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, ["account", *labels], registry=self.registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ["account"], registry=self.registry)

        self.polls = counter("popkeep_polls", "Passes finished, ok or failed.")
        self.failures = counter("popkeep_poll_failures", "Failed passes by error kind "
                                "(the error class: AuthError, ConnectError, ...).", "kind")
        self.delivered = counter("popkeep_messages_delivered",
                                 "Messages delivered to every sink.")
        self.delivered_bytes = counter("popkeep_delivered_bytes",
                                       "Octets of the messages delivered, as the server sent them.")
        self.deleted = counter("popkeep_messages_deleted",
                               "Messages deleted from the server (QUIT +OK).")
        self.server_messages = gauge("popkeep_server_messages", "Messages the server listed "
                                     "at the start of the last successful pass.")
        self.server_bytes = gauge("popkeep_server_bytes", "Octets the server listed at the "
                                  "start of the last successful pass (RFC 1939 §5 STAT).")
        self.quota_bytes = gauge("popkeep_server_quota_bytes",
                                 "The account's server_quota (absent when unset).")
        self.last_success = gauge("popkeep_last_success_timestamp_seconds",
                                  "Unix time of the end of the last successful pass.")
        self.error_streak = gauge("popkeep_error_streak", "Consecutive failed passes.")
        for account in accounts:
            self.add_account(account)

    def add_account(self, account: AccountConfig) -> None:
        """Create the account's series at zero, so a scrape sees them before a pass."""
        name = account.name
        for metric in (self.polls, self.delivered, self.delivered_bytes, self.deleted,
                       self.error_streak):
            metric.labels(name)
        if account.retention.server_quota is not None:
            self.quota_bytes.labels(name).set(account.retention.server_quota)

    async def pass_finished(
        self, account: AccountConfig, result: AccountResult, state: AccountState
    ) -> None:
        """Count one finished pass of ``account`` (a PassObserver)."""
        self.record(account, result, state)

    def record(self, account: AccountConfig, result: AccountResult, state: AccountState) -> None:
        """The synchronous body of :meth:`pass_finished`."""
        name, s = account.name, result.summary
        self.polls.labels(name).inc()
        self.delivered.labels(name).inc(s.delivered)
        self.delivered_bytes.labels(name).inc(s.delivered_bytes)
        self.deleted.labels(name).inc(s.deleted)
        self.error_streak.labels(name).set(state.error_streak)
        if result.error is not None:
            self.failures.labels(name, type(result.error).__name__).inc()
            return
        self.server_messages.labels(name).set(s.server_count)
        self.server_bytes.labels(name).set(s.server_octets)
        if state.quota_octets is not None:
            self.quota_bytes.labels(name).set(state.quota_octets)
        self.last_success.labels(name).set(s.finished_at.timestamp())

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "Metrics"]

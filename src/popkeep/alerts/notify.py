""":class:`Alerts`: told about every finished pass; raises, clears and delivers notices.

Owns: the order that makes a notice exactly-once, the same order as a collected
message (docs/guarantees.md): the store records the alert (raised or cleared)
*before* its notice goes anywhere, and the record is the notice's intent; the
notice is delivered to the account's first sink under a delivery key derived
from its content (:func:`popkeep.sinks.base.delivery_key`); only then is it
recorded as told. A crash in between leaves it owed: the next pass composes
the same bytes and asks the sink (``Sink.find``) before delivering again. A
sink that fails leaves it owed too, and the next pass tries again. Nothing here
touches a server: an alert never causes a DELE. Its callers (the service's loop,
``popkeep fetch``) call it while the pass still holds the account's lock, so no
other collector of the account finds the same notice owed meanwhile.

Must not: name concrete sinks or stores (``app`` builds them), raise out of
:meth:`Alerts.pass_finished` (a failing alert must not fail a pass).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from popkeep.alerts import conditions
from popkeep.clock import Clock
from popkeep.collector.job import AccountResult
from popkeep.config.schema import AccountConfig, ServiceConfig
from popkeep.errors import AlreadyRunning, AuthError, PopkeepError
from popkeep.sinks.base import Delivery, Sink, delivery_key
from popkeep.spool import SpooledMessage
from popkeep.state.base import Alert, StateStore

if TYPE_CHECKING:
    from popkeep.state.asyncstore import AsyncStore

log = logging.getLogger(__name__)

#: builds the account's central mailbox (its first sink), unopened (``app`` supplies it)
SinkFor = Callable[[AccountConfig], Sink]
#: the ``[service]`` settings in force, read at each pass (a reload may change them)
Settings = Callable[[], ServiceConfig]


class Alerts:
    """A pass observer (the service's ``PassObserver``; also called after ``popkeep fetch``)."""

    def __init__(
        self, store: StateStore, clock: Clock, settings: Settings, sink_for: SinkFor
    ) -> None:
        self._store = store
        self._astore: AsyncStore | None = None  #: made by the first pass_finished
        self._clock = clock
        self._settings = settings
        self._sink_for = sink_for

    async def pass_finished(
        self, account: AccountConfig, result: AccountResult, state: object = None
    ) -> None:
        """Settle the account's alerts after one pass; deliver the notices owed.

        ``state`` (the service's view of the account) is not needed: the facts come
        from the pass and the store. The store is called on its own thread
        (:meth:`AsyncStore.run`). Never raises a PopkeepError: it is logged and the
        notice stays owed for the next pass.
        """
        if not self._settings().alerts:
            return
        if self._astore is None:
            from popkeep.state.asyncstore import AsyncStore

            self._astore = AsyncStore(self._store)
        try:
            owed = await self._astore.run(self.settle, account, result)
            if owed:
                await self.tell(account, owed)
        except PopkeepError as exc:
            log.warning("account %s: alert not delivered (tried again next pass): %s",
                        account.name, exc)  # fmt: skip

    def settle(self, account: AccountConfig, result: AccountResult) -> list[tuple[Alert, bool]]:
        """Record what this pass raised and cleared; return the notices owed, in order.

        Synchronous: it calls the store directly (async code goes through
        :meth:`pass_finished`). Reads the account's open alerts (one small query)
        and, after a failed pass, where its failure streak began; writes only when
        a condition is raised or cleared. A pass that did not run (another process
        holds the account) settles nothing. Raises StateError.
        """
        settings = self._settings()
        if not settings.alerts or isinstance(result.error, AlreadyRunning):
            return []
        store, summary = self._store, result.summary
        since = store.failing_since(account.name) if summary.outcome != "ok" else None
        refused = isinstance(result.error, AuthError)
        facts = conditions.Facts(summary, result.warnings, since, refused)
        now = self._clock.now()
        after = timedelta(seconds=settings.alert_after)
        verdict = conditions.evaluate(facts, account.retention, after, now)
        current = store.open_alerts(account.name)
        active = {a.condition for a in current if a.active}
        changed = False
        for condition, holds in verdict.items():
            if holds is not None and condition not in active:
                alert = Alert(account.name, condition, now, holds.since, holds.details)
                changed |= store.raise_alert(alert)
            elif holds is None and condition in active:
                changed |= store.clear_alert(account.name, condition, now)
        return _owed(store.open_alerts(account.name) if changed else current)

    async def tell(self, account: AccountConfig, owed: list[tuple[Alert, bool]]) -> None:
        """Deliver each owed notice once (asking the sink first), then record it told.

        Raises the sink's or the store's PopkeepError; what was not recorded as told
        stays owed."""
        # Imported here: the email package costs milliseconds, paid only when owed.
        from popkeep.alerts.message import Envelope, alert_uid, compose, recipient

        settings = self._settings()
        envelope = Envelope(
            settings.alert_from, recipient(account.server.user or account.name),
            settings.language,
        )  # fmt: skip
        sink = self._sink_for(account)
        await sink.open()
        try:
            for alert, cleared in owed:
                message = SpooledMessage.from_bytes(compose(alert, cleared, envelope))
                key = delivery_key(account.name, message.sha256)
                if not sink.exactly_once or await sink.find(key, message) is None:
                    delivery = Delivery(account.name, alert_uid(alert, cleared), key, message)
                    await sink.deliver([delivery])
                await self._told(alert, cleared)
                notice = "cleared" if cleared else "raised"
                log.info("account %s: alert %s %s, told in sink %s",
                         account.name, alert.condition, notice, sink.name)  # fmt: skip
        finally:
            await sink.close()


    async def _told(self, alert: Alert, cleared: bool) -> None:
        now = self._clock.now()
        if self._astore is None:  # no loop (popkeep fetch): the store answers at once
            self._store.alert_told(alert, cleared, now)
        else:
            await self._astore.alert_told(alert, cleared, now)


def _owed(alerts: list[Alert]) -> list[tuple[Alert, bool]]:
    """(alert, cleared) for each notice not yet told, raising before clearing."""
    owed: list[tuple[Alert, bool]] = []
    for alert in alerts:
        if alert.raised_sent_at is None:
            owed.append((alert, False))
        if alert.cleared_at is not None and alert.cleared_sent_at is None:
            owed.append((alert, True))
    return owed

"""The polling loop of ``popkeep serve``: every account on its own rhythm.

Owns: when each account's pass starts (through :mod:`.schedule`), how many run at
once (``[service] concurrency``), the account's :class:`~.model.AccountState`,
telling the :class:`~.model.PassObserver`\\ s, check-now, a new configuration
(SIGHUP) and stopping (SIGTERM). A pass is the one pass of ``popkeep fetch``
(:meth:`popkeep.app.App.passes` and the collector), under the store's account lock:
an account another process is collecting is skipped this round, not a failure.
Must not: decide what a pass does (``collector``) or name concrete classes (``app``).

Time comes from the injected :class:`~popkeep.clock.Clock` (waits through its
``sleep_until``), so a test with a fake clock runs a week of polling in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from popkeep.errors import PopkeepError, outcome_words
from popkeep.service import schedule
from popkeep.service.model import AccountState

if TYPE_CHECKING:
    from popkeep.app import App
    from popkeep.clock import Clock
    from popkeep.collector import AccountResult
    from popkeep.config.schema import AccountConfig, Config
    from popkeep.service.model import PassObserver, Phase

log = logging.getLogger(__name__)

#: seconds a stopping service lets running passes end by themselves before it
#: cancels them (a cancelled pass closes its session without QUIT: nothing is
#: deleted that was not recorded; docs/guarantees.md)
STOP_GRACE = 0.5


class _Slot:
    """One account in the service: its config, state, next poll (monotonic) and pass."""

    __slots__ = ("again", "config", "due", "reconfigured", "state", "task")

    def __init__(self, config: AccountConfig, state: AccountState, due: float | None) -> None:
        self.config = config
        self.state = state
        self.due = due  #: monotonic time of the next poll; None while polling or held
        self.task: asyncio.Task[None] | None = None
        self.again = False  #: a check-now arrived during the pass: poll again at once
        #: a reload changed the account during the pass, which ran on the old settings:
        #: poll again at once, even if the pass ended held (the password may be fixed)
        self.reconfigured = False


class Service:
    """Polls the enabled accounts of ``app.config`` until :meth:`stop`; a
    :class:`~.model.ServiceView`. Use from one event loop."""

    def __init__(
        self,
        app: App,
        *,
        observers: Sequence[PassObserver] = (),
        random: schedule.Random = _random.random,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self._app = app
        self._clock: Clock = app.clock
        self._observers = tuple(observers)
        self._random = random
        self._stop_grace = stop_grace
        self._started = self._clock.now()
        self._slots: dict[str, _Slot] = {}
        self._removed: set[str] = set()
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self._sleeper: asyncio.Future[None] | None = None  #: waiting for the next due poll
        self._add_accounts(app.config)

    # -- ServiceView ------------------------------------------------------------------

    def accounts(self) -> list[AccountState]:
        """Every account being polled, in configuration order."""
        return [slot.state for slot in self._slots.values()]

    def check_now(self, names: Sequence[str] = ()) -> list[str]:
        """Poll ``names`` (every account when empty) at once, clearing a hold; the
        names it will poll. An unknown name raises ValueError and polls none."""
        unknown = [n for n in names if n not in self._slots]
        if unknown:
            known = ", ".join(self._slots) or "none"
            raise ValueError(f"unknown account {unknown[0]!r} (polled: {known})")
        chosen = list(dict.fromkeys(names)) or list(self._slots)
        for name in chosen:
            slot = self._slots[name]
            if slot.task is not None:
                slot.again = True
            else:
                self._due_now(slot)
        log.info("check-now: %s", ", ".join(chosen))
        self._poke()
        return chosen

    def started_at(self) -> datetime:
        return self._started

    # -- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Start no more passes; :meth:`run` returns once the running ones end
        (cancelled after ``stop_grace`` seconds). Safe from a signal handler."""
        self._stopping = True
        self._poke()

    def reload(self, config: Config) -> None:
        """Poll the accounts of ``config`` (already validated) from now on.

        An account that is new or whose settings changed is polled at once (a held
        one is no longer held: its password may have been fixed), or as soon as its
        running pass ends, since that pass used the old settings; one no longer
        configured is dropped once its running pass ends. The state store stays the
        one opened at start, the status API on the address and password it had."""
        if config.state != self._app.config.state:
            log.warning("reload: [state] changes take effect when popkeep serve restarts")
            config = config._replace(state=self._app.config.state)
        old_service = self._app.config.service
        if (config.service.listen, config.service.password) != (
                old_service.listen, old_service.password):
            log.warning("reload: [service] listen and password take effect when popkeep "
                        "serve restarts (the status API keeps %s)", old_service.listen)
        old = self._slots
        self._app.config = config
        wanted = {a.name: a for a in self._app.accounts()}
        for name in [n for n in old if n not in wanted]:
            if old[name].task is not None:
                self._removed.add(name)
            else:
                del old[name]
        for name, account in wanted.items():
            self._removed.discard(name)
            slot = old.get(name)
            if slot is None:
                continue
            if slot.config != account:
                slot.config = account
                slot.state = replace(slot.state, quota_octets=account.retention.server_quota)
                if slot.task is None:
                    self._due_now(slot)
                else:
                    slot.reconfigured = True
        self._add_accounts(config)
        self._slots = {name: self._slots[name] for name in (*wanted, *self._removed)}
        log.info("reload: polling %d account(s)", len(wanted))
        self._poke()

    async def run(self) -> None:
        """Poll until :meth:`stop`; then wait for (or cancel) the running passes."""
        self._wake = asyncio.Event()
        self._started = self._clock.now()
        log.info("popkeep serve: polling %d account(s)", len(self._slots))
        try:
            while not self._stopping:
                self._wake.clear()
                self._start_due()
                await self._sleep()
        finally:
            await self._finish()
        log.info("popkeep serve: stopped")

    # -- the loop -----------------------------------------------------------------------

    def _add_accounts(self, config: Config) -> None:
        now = self._clock.monotonic()
        for account in self._app.accounts():
            if account.name not in self._slots:
                state = AccountState(
                    name=account.name, phase="waiting", next_poll_at=self._clock.now(),
                    last_poll_at=None,
                    last_outcome=None, last_error=None, error_streak=0, failing_since=None,
                    last_success_at=None, server_count=None, server_octets=None,
                    quota_octets=account.retention.server_quota,
                )  # fmt: skip
                self._slots[account.name] = _Slot(account, state, now)

    def _poke(self) -> None:
        """Wake :meth:`_sleep`. Cancelling its wait for the clock here, in the same
        step as what changed (a pass that ended, a check-now), keeps a fake clock
        from jumping to the old deadline past a poll that has just become due."""
        if self._wake is not None:
            self._wake.set()
        if self._sleeper is not None:
            self._sleeper.cancel()

    def _running(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.task is not None)

    def _start_due(self) -> None:
        """Start the passes that are due, earliest first, up to the concurrency."""
        now = self._clock.monotonic()
        due = sorted(
            (s for s in self._slots.values()
             if s.task is None and s.due is not None and s.due <= now
             and s.config.name not in self._removed),
            key=lambda s: s.due or 0.0,
        )  # fmt: skip
        free = self._app.config.service.concurrency - self._running()
        for slot in due[: max(0, free)]:
            slot.due = None
            slot.state = replace(slot.state, phase="polling", next_poll_at=None,
                                 last_poll_at=self._clock.now())
            slot.task = asyncio.create_task(self._one(slot), name=f"pass {slot.config.name}")

    async def _sleep(self) -> None:
        """Until the next poll is due, a pass ends, or something asks (check-now,
        reload, stop). On a clock that jumps (a test's FakeClock) a pass takes no
        time: while one runs, only its end (or a request) wakes the loop, so the
        clock cannot leap past polls that fall due during it, however slow the
        pass's real I/O is."""
        assert self._wake is not None
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        idle = [s.due for s in self._slots.values() if s.task is None and s.due is not None]
        running = self._running()
        if (idle and running < self._app.config.service.concurrency
                and not (running and self._clock.jumps)):
            self._sleeper = asyncio.ensure_future(self._clock.sleep_until(min(idle)))
            waits.append(self._sleeper)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._sleeper = None
            for wait in waits:
                wait.cancel()

    async def _one(self, slot: _Slot) -> None:
        """One pass of ``slot``'s account, its next poll, then the observers, all while
        the pass's hold on the account's lock lasts: the alerts the observers deliver
        must not meet another pass of the account, in this process or another (a cron
        ``popkeep fetch``), which would find the same notice owed and deliver it too
        (docs/alerts.md, "Never lost, never twice")."""
        account = slot.config
        try:
            with ExitStack() as held:
                result = await self._collect(account, held)
                self._finished(slot, result)
                await self._observe(account, result, slot.state)
        finally:
            slot.task = None
            self._asked_meanwhile(slot)
            if account.name in self._removed:
                self._removed.discard(account.name)
                self._slots.pop(account.name, None)
            self._poke()

    async def _collect(self, account: AccountConfig, held: ExitStack) -> AccountResult:
        """The account's pass, its lock entered into ``held`` (skipped, with
        AlreadyRunning, when another process holds it). Never raises a PopkeepError,
        nor any other Exception (a bug must not stop the other accounts' polling):
        it is in the result."""
        try:
            passes = held.enter_context(self._app.passes([account.name]))
            if passes.skipped:
                return passes.skipped[0]
            (job,) = passes.jobs
            return await passes.collector.run(job)
        except PopkeepError as exc:  # before the pass: a sink's path, the store
            log.info("account %s: %s", account.name, exc)
            return self._failed(account, exc)
        except Exception as exc:
            log.exception("account %s: the pass failed unexpectedly", account.name)
            return self._failed(account, PopkeepError(f"internal error: {exc!r}"))

    async def _observe(self, account: AccountConfig, result: AccountResult,
                       state: AccountState) -> None:  # fmt: skip
        for observer in self._observers:
            try:
                await observer.pass_finished(account, result, state)
            except Exception:
                log.exception("account %s: an observer of the pass failed", account.name)

    def _asked_meanwhile(self, slot: _Slot) -> None:
        """A check-now or a reload that came while the observers ran (after
        :meth:`_finished`) polls the account as soon as they are done."""
        if slot.again or slot.reconfigured:
            slot.again = slot.reconfigured = False
            self._due_now(slot)

    def _due_now(self, slot: _Slot) -> None:
        """Poll ``slot``'s account (not running) at once, held or not."""
        slot.due = self._clock.monotonic()
        slot.state = replace(slot.state, phase="waiting", next_poll_at=self._clock.now())

    def _failed(self, account: AccountConfig, error: PopkeepError) -> AccountResult:
        """The result of a pass that never started."""
        from popkeep.collector import AccountResult
        from popkeep.model import RunSummary

        now = self._clock.now()
        return AccountResult(RunSummary(account.name, now, now, type(error).__name__,
                                        str(error)), error)  # fmt: skip

    def _finished(self, slot: _Slot, result: AccountResult) -> None:
        """The account's state and next poll after ``result``."""
        summary, error = result.summary, result.error
        old = slot.state
        after = schedule.after(error, old.error_streak, slot.config, self._app.config.service,
                               self._random, result.login_interval)  # fmt: skip
        now_mono, now = self._clock.monotonic(), self._clock.now()
        phase: Phase = after.phase
        if slot.reconfigured or (slot.again and after.phase != "held"):
            slot.due, phase = now_mono, "waiting"
        else:
            slot.due = None if after.delay is None else now_mono + after.delay
        slot.again = slot.reconfigured = False
        failed = after.error_streak > 0
        slot.state = replace(
            old,
            phase=phase,
            last_outcome=outcome_words(summary.outcome),
            last_error=None if error is None else str(error),
            error_streak=after.error_streak,
            failing_since=(old.failing_since or summary.started_at) if failed else None,
            last_success_at=summary.finished_at if error is None else old.last_success_at,
            server_count=summary.server_count if error is None else old.server_count,
            server_octets=summary.server_octets if error is None else old.server_octets,
        )
        slot.state = replace(slot.state, next_poll_at=self._wall(slot.due, now, now_mono))
        wait = "after a check-now" if slot.due is None else f"in {slot.due - now_mono:.0f} s"
        log.info("account %s: %s; next poll %s", slot.config.name, slot.state.last_outcome, wait)
        if phase == "held":
            log.warning("account %s: not polled again until its configuration changes or "
                        "popkeep check-now %s: %s", slot.config.name, slot.config.name, error)

    async def _finish(self) -> None:
        """Let the running passes end for ``stop_grace`` seconds, then cancel them."""
        tasks = [s.task for s in self._slots.values() if s.task is not None]
        if not tasks:
            return
        log.info("popkeep serve: waiting for %d running pass(es)", len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self._stop_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _wall(due: float | None, now: datetime, now_mono: float) -> datetime | None:
        """The wall-clock time of the monotonic ``due``."""
        return None if due is None else now + timedelta(seconds=max(0.0, due - now_mono))

"""When an account is polled next, from how its last pass ended (pure; no I/O, no clock).

Owns: the interval with jitter, exponential backoff after failures up to a cap,
the server's own delay (``[LOGIN-DELAY]``, ``[IN-USE]``) and the hold after a
refused login. Must not: sleep, read the clock or run passes (``service.loop``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from popkeep.errors import AlreadyRunning, AuthError, ServerBusy

if TYPE_CHECKING:
    from popkeep.config.schema import AccountConfig, ServiceConfig
    from popkeep.errors import PopkeepError
    from popkeep.service.model import Phase

#: a number in [0, 1) (``random.random``); injected so tests choose the jitter
Random = Callable[[], float]


class Next(NamedTuple):
    """What follows a pass: the account's phase and the wait before its next poll
    (None: held, no poll until the config changes or a check-now asks)."""

    phase: Phase
    delay: float | None
    error_streak: int


def interval(account: AccountConfig, service: ServiceConfig) -> float:
    """The account's own ``interval``, else ``[service] interval`` (seconds)."""
    return account.interval if account.interval is not None else service.interval


def jittered(seconds: float, jitter: float, random: Random) -> float:
    """``seconds`` moved by up to ``jitter`` × itself, earlier or later, so that
    accounts started together do not keep hitting one server at the same moment."""
    return seconds * (1.0 + jitter * (2.0 * random() - 1.0))


def backoff(every: float, streak: int, cap: float) -> float:
    """The wait after ``streak`` (≥ 1) failed passes in a row: the interval doubled
    per failure, at most ``cap`` and never less than the interval itself."""
    return max(every, min(cap, every * 2.0 ** min(streak, 32)))


def after(
    error: PopkeepError | None,
    streak: int,
    account: AccountConfig,
    service: ServiceConfig,
    random: Random,
    login_interval: float | None = None,
) -> Next:
    """The phase and wait after a pass that ended with ``error`` (None: it
    succeeded), ``streak`` being the failed passes in a row before it.

    - success: the interval (with jitter); the streak ends;
    - another process holds the account (a cron ``popkeep fetch``): the interval,
      not a failure;
    - a refused login (``[AUTH]`` or a plain -ERR to PASS): held; polling again
      with the same password could get the account locked;
    - ``[LOGIN-DELAY]`` / ``[IN-USE]`` / ``[SYS/TEMP]``: no sooner than the delay the
      server named (RFC 2449 §8.1.1), else backoff;
    - anything else: backoff.

    Whatever the ending, never sooner than ``login_interval``: the seconds the server
    asked between logins when the pass logged in (CAPA LOGIN-DELAY, RFC 2449 §6.5), so
    a server that advertises it is not logged in to too early and refused.
    """
    following = _after(error, streak, account, service, random)
    if login_interval is None or following.delay is None:
        return following
    return following._replace(delay=max(following.delay, login_interval))


def _after(
    error: PopkeepError | None,
    streak: int,
    account: AccountConfig,
    service: ServiceConfig,
    random: Random,
) -> Next:
    every = interval(account, service)
    if error is None:
        return Next("waiting", jittered(every, service.jitter, random), 0)
    if isinstance(error, AlreadyRunning):
        return Next("waiting", jittered(every, service.jitter, random), streak)
    streak += 1
    if isinstance(error, AuthError):
        return Next("held", None, streak)
    longest = max(every, service.backoff_cap)  # jitter never takes it past the cap
    wait = min(longest, jittered(backoff(every, streak, service.backoff_cap), service.jitter,
                                 random))
    if isinstance(error, ServerBusy):
        if error.retry_after is not None:  # the server said how long: that, not less
            wait = max(error.retry_after, jittered(every, service.jitter, random))
        return Next("server_delay", wait, streak)
    return Next("backing_off", wait, streak)

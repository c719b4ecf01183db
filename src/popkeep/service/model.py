"""What the running service tells the status API, /metrics and alerts (plain data).

Owns: :class:`AccountState` (one account as the service sees it) and the
:class:`PassObserver` and :class:`ServiceView` protocols between the polling loop
and whoever watches it. Must not: do I/O or import asyncio at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from popkeep.collector import AccountResult
    from popkeep.config.schema import AccountConfig

#: - ``waiting``: the next poll comes at the account's interval;
#: - ``polling``: a pass is running;
#: - ``backing_off``: after failed passes, the next one waits longer each time;
#: - ``held``: no polls until the account's config changes or a check-now asks
#:   (a refused login, ``[AUTH]``, RFC 3206 §5);
#: - ``server_delay``: the server asked for no login before a time
#:   (``[LOGIN-DELAY]``, RFC 2449 §8.1.1, or ``[IN-USE]``, RFC 2449 §8.1.2).
Phase = Literal["waiting", "polling", "backing_off", "held", "server_delay"]


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account in the service; every time is timezone-aware UTC."""

    name: str
    phase: Phase
    next_poll_at: datetime | None  #: None while polling or held
    last_poll_at: datetime | None
    last_outcome: str | None  #: in words, as ``popkeep status`` prints them
    last_error: str | None  #: already printable (errors.printable); never a secret
    error_streak: int  #: consecutive failed passes
    failing_since: datetime | None  #: first failure of the current streak
    last_success_at: datetime | None
    server_count: int | None  #: from the last successful pass's summary
    server_octets: int | None
    quota_octets: int | None  #: the account's retention ``server_quota``; None if unset


class PassObserver(Protocol):
    """Told about every finished pass, in the service and (where cheap) after
    ``popkeep fetch``, while the pass still holds the account's lock (what an observer
    writes for the account meets no other pass of it). The service logs an observer's
    exception and goes on."""

    async def pass_finished(
        self, account: AccountConfig, result: AccountResult, state: AccountState
    ) -> None:
        """``state`` is the account as it is after ``result`` (phase, next poll)."""
        ...


class ServiceView(Protocol):
    """What the web/API layer may ask of the running service."""

    def accounts(self) -> Sequence[AccountState]:
        """Every configured account, in configuration order."""
        ...

    def check_now(self, names: Sequence[str] = ()) -> list[str]:
        """Poll ``names`` (all accounts when empty) at once, clearing a hold; the
        names it will poll. An unknown name raises ValueError and polls none."""
        ...

    def started_at(self) -> datetime:
        """When the service started (UTC)."""
        ...

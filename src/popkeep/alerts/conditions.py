"""Which alert conditions hold for an account, from the facts of one pass. Pure.

Owns: the rules (docs/alerts.md, "What is sent when"). Each rule answers, for its
condition, *active* (with since-time and details), *clear*, or nothing when this
pass cannot tell (a failed pass says nothing about the quota). Must not: do I/O,
read a clock, or know stores and sinks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from popkeep.model import RetentionPolicy, RunSummary

Condition = Literal["signin", "failing", "quota", "skipped"]

#: every condition, in the order notices about one pass are written
CONDITIONS: tuple[Condition, ...] = ("signin", "failing", "quota", "skipped")


class Active(NamedTuple):
    """A condition that holds: since when, and the facts the notice states."""

    since: datetime
    details: str


class Facts(NamedTuple):
    """What one finished pass tells about its account."""

    summary: RunSummary
    warnings: Sequence[str] = ()
    #: start of the current failure streak (store runs), None when the pass was ok
    failing_since: datetime | None = None
    #: the server refused the sign-in (AuthError): the service holds the account
    signin_refused: bool = False


#: condition → Active (holds) or None (clear); a condition left out is unknown this pass
Verdict = dict[Condition, Active | None]


def evaluate(
    facts: Facts, policy: RetentionPolicy, alert_after: timedelta, now: datetime
) -> Verdict:
    """The conditions this pass settles (see the module docstring)."""
    verdict: Verdict = {}
    for condition, rule in _RULES.items():
        settled = rule(facts, policy, alert_after, now)
        if not isinstance(settled, _Unknown):
            verdict[condition] = settled
    return verdict


class _Unknown:
    """This pass cannot tell (a sentinel; None means clear)."""


_UNKNOWN = _Unknown()
_Answer = Active | None | _Unknown


def _ok(summary: RunSummary) -> bool:
    return summary.outcome == "ok"


def _signin(facts: Facts, policy: RetentionPolicy, after: timedelta, now: datetime) -> _Answer:
    """The server refused the sign-in: at once, not after ``alert_after`` — the service
    stops polling such an account until its config changes (a wrong password must not
    get it locked), so no later pass would tell. A successful pass clears it."""
    summary = facts.summary
    if facts.signin_refused:
        return Active(facts.failing_since or now, summary.error or summary.outcome)
    return None if _ok(summary) else _UNKNOWN


def _failing(facts: Facts, policy: RetentionPolicy, after: timedelta, now: datetime) -> _Answer:
    """Failed passes for longer than ``alert_after`` (counted from the streak's first
    failed run); a successful pass clears it. A refused sign-in is ``signin``'s."""
    summary = facts.summary
    if _ok(summary):
        return None
    since = facts.failing_since
    if facts.signin_refused:
        return _UNKNOWN
    if since is None or now - since < after:
        return _UNKNOWN  # failing, not yet for long: an active alert stays, none is raised
    return Active(since, summary.error or summary.outcome)


def _quota(facts: Facts, policy: RetentionPolicy, after: timedelta, now: datetime) -> _Answer:
    """Above the quota's high mark after a complete pass that deleted nothing: the
    retention rule found nothing more it may delete (docs/central-mailbox.md)."""
    summary = facts.summary
    if policy.server_quota is None:
        return None
    if not _ok(summary):
        return _UNKNOWN
    high = policy.server_quota * policy.high_water
    if summary.server_octets <= high:
        return None
    if summary.deleted:
        return _UNKNOWN  # it deleted some: the next pass lists what is left
    usage = f"{_mb(summary.server_octets)} / {_mb(policy.server_quota)}"
    return Active(now, f"{usage} (> {policy.high_water:.0%})")


def _skipped(facts: Facts, policy: RetentionPolicy, after: timedelta, now: datetime) -> _Answer:
    """Messages left on the server for good: refused by a sink, cut mid-transfer, or
    larger than max_message_size. A complete pass with none clears it."""
    summary = facts.summary
    if summary.skipped:
        lines = [w for w in facts.warnings if w.startswith("message ")]
        return Active(now, "\n".join(lines) or str(summary.skipped))
    return None if _ok(summary) else _UNKNOWN


def _mb(octets: int) -> str:
    return f"{octets / 1e6:.1f} MB"


_Rule = Callable[[Facts, RetentionPolicy, timedelta, datetime], _Answer]
_RULES: dict[Condition, _Rule] = {
    "signin": _signin, "failing": _failing, "quota": _quota, "skipped": _skipped,
}

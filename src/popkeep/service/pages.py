"""What the dashboard's Accounts, Upcoming deletions and History pages show, as plain data.

Owns: turning the service's account states, the account settings, the store's
records and the planned deletions into the rows and sentences the templates
print, in the reader's language and time zone (:class:`Reader`). Must not: do
I/O, know HTTP or Starlette, or compute retention itself (the deletions come from
``App.schedule``, the same function as ``popkeep schedule``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, NamedTuple

from popkeep.errors import outcome_words
from popkeep.service import charts
from popkeep.service.words import Lang, messages, octets, outcome, say

if TYPE_CHECKING:
    from popkeep.model import RunSummary
    from popkeep.service.model import AccountState
    from popkeep.service.web import Deletion
    from popkeep.state.base import Alert, Refusal

#: days of history in the delivered-per-day chart; of upcoming deletions drawn, at
#: least and at most
HISTORY_DAYS = 30
DELETION_DAYS = 14
MAX_DELETION_DAYS = 60
RECENT_RUNS = 20


class Facts(NamedTuple):
    """An account's settings the dashboard shows (from the configuration)."""

    sinks: tuple[str, ...]
    quota: int | None
    high_water: float
    low_water: float


class Records(NamedTuple):
    """What the dashboard reads from the state store (read-only)."""

    runs: Sequence[RunSummary]  #: most recent first, every account
    delivered: Mapping[str, Sequence[datetime]]  #: account → first retrievals, recent ones
    refusals: Mapping[str, Sequence[Refusal]]
    alerts: Sequence[Alert]
    volume: tuple[float, int] | None  #: measured messages a day and mean size, if any


EMPTY = Records((), {}, {}, (), None)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads: their language, their time zone, and the time now."""

    lang: Lang
    zone: tzinfo
    now: datetime

    def say(self, key: str, **fields: object) -> str:
        return say(self.lang, key, **fields)

    def time(self, moment: datetime | None) -> str:
        """``2026-12-05 09:04`` in the reader's zone ("" for None)."""
        if moment is None:
            return ""
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def relative(self, moment: datetime) -> str:
        """``in 4 min`` / ``3 h ago`` (``4 分後`` / ``3 時間前``)."""
        seconds = (moment - self.now).total_seconds()
        amount, unit = _rounded(abs(seconds), self.lang)
        if self.lang == "ja":
            return f"{amount} {unit}{'後' if seconds > 0 else '前'}"
        return f"in {amount} {unit}" if seconds > 0 else f"{amount} {unit} ago"

    def when(self, moment: datetime | None) -> str:
        return "" if moment is None else f"{self.time(moment)} ({self.relative(moment)})"


def _rounded(seconds: float, lang: Lang) -> tuple[int, str]:
    units = ((86400, "d", "日"), (3600, "h", "時間"), (60, "min", "分"), (1, "s", "秒"))
    for size, en, ja in units:
        if seconds >= size or size == 1:
            return round(seconds / size), (ja if lang == "ja" else en)
    raise AssertionError("unreachable")  # pragma: no cover


def account_cards(
    states: Sequence[AccountState], facts: Mapping[str, Facts], records: Records, who: Reader,
) -> list[dict[str, Any]]:
    """One card per account, in configuration order."""
    last_runs: dict[str, RunSummary] = {}
    for run in records.runs:
        last_runs.setdefault(run.account, run)
    return [_card(s, facts.get(s.name), last_runs.get(s.name),
                  records.refusals.get(s.name, ()), who) for s in states]  # fmt: skip


def _card(
    state: AccountState, facts: Facts | None, run: RunSummary | None,
    refusals: Sequence[Refusal], who: Reader,
) -> dict[str, Any]:
    failing = state.error_streak > 0
    return {
        "name": state.name,
        "phase": state.phase,
        "phase_words": who.say(f"phase.{state.phase}"),
        "failing": failing,
        "last": _last_words(state, facts, run, who),
        "last_at": who.when(state.last_poll_at),
        "next": _next_words(state, who),
        "streak": who.say("streak.one" if state.error_streak == 1 else "streak",
                          count=state.error_streak, since=who.time(state.failing_since))
        if failing else "",
        "error": state.last_error or "",
        "usage": _usage(state, facts, who),
        "skipped": [{"uid": r.uid, "sink": r.sink, "size": octets(r.size), "reason": r.reason,
                     "at": who.time(r.refused_at)} for r in refusals],
    }  # fmt: skip


def _last_words(state: AccountState, facts: Facts | None, run: RunSummary | None,
                who: Reader) -> str:
    if state.last_outcome is None:
        return who.say("last.never")
    if state.last_outcome != "ok":
        return outcome(who.lang, state.last_outcome)
    count = run.delivered if run is not None and run.outcome == "ok" else 0
    if not count:
        return who.say("ok.none")
    sinks = ", ".join(facts.sinks) if facts is not None else ""
    return who.say("ok.some", count=count, messages=messages(who.lang, count), sinks=sinks)


def _next_words(state: AccountState, who: Reader) -> str:
    if state.phase == "polling":
        return who.say("next.polling")
    if state.phase == "held" or state.next_poll_at is None:
        return who.say("next.held")
    return who.when(state.next_poll_at)


def _usage(state: AccountState, facts: Facts | None, who: Reader) -> dict[str, Any]:
    if state.server_octets is None:
        return {"text": who.say("quota.unknown"), "svg": ""}
    used = state.server_octets
    quota = state.quota_octets or (facts.quota if facts else None)
    if not quota:
        text = who.say("quota.none", used=octets(used), count=state.server_count or 0)
        return {"text": text, "svg": ""}
    high, low = (facts.high_water, facts.low_water) if facts else (0.9, 0.7)
    text = who.say("quota.of", used=octets(used), quota=octets(quota),
                   percent=round(100 * used / quota), high=round(100 * high),
                   low=round(100 * low))  # fmt: skip
    return {"text": text, "svg": charts.quota_bar(used, quota, high, low, text)}


def deletions(
    states: Sequence[AccountState], planned: Sequence[Deletion], who: Reader,
    listed: int = 50,
) -> list[dict[str, Any]]:
    """Per account: the count and size of what retention will delete, bars of the
    coming days, and the first ``listed`` deletions one by one."""
    by_account: dict[str, list[Deletion]] = {}
    for p in planned:
        by_account.setdefault(p.account, []).append(p)
    today = who.now.astimezone(who.zone).date()
    last = max((p.due_at.astimezone(who.zone).date() for p in planned if p.due_at is not None),
               default=today)  # fmt: skip
    span = min(MAX_DELETION_DAYS, max(DELETION_DAYS, (last - today).days + 1))
    days = [today + timedelta(days=k) for k in range(span)]
    out = []
    for state in states:
        mine = by_account.get(state.name, [])
        counts = [0] * len(days)
        for p in mine:
            day = today if p.due_now or p.due_at is None else p.due_at.astimezone(who.zone).date()
            if 0 <= (day - today).days < len(days):
                counts[(day - today).days] += 1
        labels = [d.strftime("%m-%d") for d in days]
        summary = who.say("deletions.summary", count=len(mine), messages=messages(who.lang,
                          len(mine)), size=octets(sum(p.size for p in mine)),
                          now=sum(1 for p in mine if p.due_now))  # fmt: skip
        out.append({
            "name": state.name, "count": len(mine), "summary": summary,
            "svg": charts.deletion_days(labels, counts, f"{state.name}: {summary}") if mine else "",
            "rows": [{"when": who.say("deletions.next_check") if p.due_now else who.time(p.due_at),
                      "size": octets(p.size), "why": _why(p, who), "uid": p.uid}
                     for p in mine[:listed]],
            "more": max(0, len(mine) - listed),
        })  # fmt: skip
    return out


def _why(planned: Deletion, who: Reader) -> str:
    """The retention function's reason; a future deletion by age says so in words
    (its reason is "kept: due …", as ``popkeep schedule`` shows it)."""
    if planned.reason.startswith("kept:"):
        return who.say("deletions.age")
    return planned.reason


def history(
    states: Sequence[AccountState], records: Records, who: Reader
) -> dict[str, Any]:
    """The delivered-per-day chart, the recent runs and the alerts."""
    today = who.now.astimezone(who.zone).date()
    days = [today - timedelta(days=k) for k in range(HISTORY_DAYS - 1, -1, -1)]
    names = [s.name for s in states]
    names += [n for n in records.delivered if n not in names]
    series = [(name, _per_day(records.delivered.get(name, ()), days, who.zone)) for name in names]
    label = who.say("history.delivered", days=HISTORY_DAYS)
    runs = [{"at": who.time(r.finished_at), "account": r.account,
             "outcome": outcome(who.lang, outcome_words(r.outcome)),
             "ok": r.outcome == "ok", "delivered": r.delivered, "deleted": r.deleted,
             "error": r.error or ""} for r in records.runs[:RECENT_RUNS]]  # fmt: skip
    alerts = [{"account": a.account, "condition": a.condition, "details": a.details,
               "raised": who.say("history.raised", at=who.time(a.raised_at)),
               "cleared": who.say("history.cleared", at=who.time(a.cleared_at))
               if a.cleared_at else who.say("history.active")}
              for a in records.alerts]  # fmt: skip
    chart = charts.daily_bars([d.strftime("%m-%d") for d in days], series, label)
    return {"chart": chart, "chart_label": label, "runs": runs, "alerts": alerts}


def _per_day(moments: Sequence[datetime], days: Sequence[date], zone: tzinfo) -> list[int]:
    first = days[0]
    counts = [0] * len(days)
    for moment in moments:
        k = (moment.astimezone(zone).date() - first).days
        if 0 <= k < len(days):
            counts[k] += 1
    return counts


def local_zone() -> tzinfo:
    """The server's own time zone (the default for readers who name none)."""
    zone = datetime.now(UTC).astimezone().tzinfo
    return zone if zone is not None else UTC


__all__ = ["EMPTY", "Facts", "Reader", "Records", "account_cards", "deletions", "history",
           "local_zone"]

"""Rendering results for people (one line per account) and for scripts (JSON).

Pure functions of result objects; the JSON shapes are the stable contract
documented in docs/cli.md (keys may be added, never renamed or removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from popkeep.errors import outcome_words

if TYPE_CHECKING:  # a fetch loads the collector after its logins began (cli.quick.poll)
    from datetime import datetime

    from popkeep.app import AccountStatus, PlannedDeletion
    from popkeep.collector import AccountResult
    from popkeep.model import RunSummary


def size_text(octets: int) -> str:
    """A size for people: KB below a megabyte (a few small messages are not "0.0 MB")."""
    if octets < 1_000_000:
        return f"{octets / 1e3:.1f} KB" if octets else "0 KB"
    return f"{octets / 1e6:.1f} MB"


def _time(moment: datetime | None) -> str | None:
    """For ``--json``: UTC, ISO 8601 (as stored)."""
    return None if moment is None else moment.isoformat(timespec="seconds")


def _local(moment: datetime, utc: bool) -> datetime:
    """``moment`` in the user's time zone, or in UTC with ``--utc``."""
    from datetime import UTC

    return moment.astimezone(UTC if utc else None)


def _when(moment: datetime, utc: bool) -> str:
    """For people: "2026-12-04 16:18 JST" (local), "2026-12-04 07:18 UTC" (``--utc``)."""
    shown = _local(moment, utc)
    return shown.strftime("%Y-%m-%d %H:%M ") + ("UTC" if utc else shown.strftime("%Z"))


def fetch_line(result: AccountResult) -> str:
    s = result.summary
    if result.error is not None:
        hint = f" ({result.error.hint})" if result.error.hint else ""
        return f"{s.account}: FAILED: {result.error}{hint}"
    parts = [f"{s.delivered} new ({size_text(s.delivered_bytes)})"]
    for count, word in ((s.deleted, "deleted"), (s.gone, "gone"), (s.adopted, "already had"),
                        (s.skipped, "too large, left on server")):
        if count:
            parts.append(f"{count} {word}")
    on_server = s.server_count - s.deleted
    parts.append(f"{on_server} on server")
    return f"{s.account}: " + ", ".join(parts)


def summary_json(s: RunSummary) -> dict[str, Any]:
    return {
        "account": s.account,
        "started_at": _time(s.started_at),
        "finished_at": _time(s.finished_at),
        "outcome": s.outcome,
        "error": s.error,
        "listed": s.listed,
        "delivered": s.delivered,
        "delivered_bytes": s.delivered_bytes,
        "adopted": s.adopted,
        "deleted": s.deleted,
        "gone": s.gone,
        "skipped": s.skipped,
        "server_count": s.server_count,
        "server_octets": s.server_octets,
    }


def result_json(result: AccountResult) -> dict[str, Any]:
    data = summary_json(result.summary)
    data["ok"] = result.error is None
    data["retry"] = None if result.error is None else result.error.retry
    data["warnings"] = list(result.warnings)
    return data


def status_lines(rows: Sequence[AccountStatus], utc: bool = False) -> list[str]:
    """One line per account; times local (``utc``: in UTC), outcomes in words."""
    return [line for row in rows for line in account_status_lines(row, utc)]


def account_status_lines(row: AccountStatus, utc: bool = False) -> list[str]:
    """One account's line, then its last error and skipped messages, indented."""
    run = row.last_run
    last = ("never run" if run is None
            else f"last run {_when(run.finished_at, utc)}: {outcome_words(run.outcome)}")
    lines = [
        f"{row.account}: {last}; {row.delivered} delivered, {row.on_server} on server "
        f"({size_text(row.bytes_on_server)}), {row.gone} gone"
    ]
    if run is not None and run.error:
        lines.append(f"  last error: {run.error}")
    lines += [
        f"  skipped, left on the server: message {r.uid} ({r.size} octets) since "
        f"{r.refused_at.date().isoformat()}: {r.reason} (popkeep retry {row.account})"
        for r in row.skipped
    ]
    return lines


def status_json(rows: Sequence[AccountStatus]) -> dict[str, Any]:
    return {
        "accounts": [
            {
                "account": row.account,
                "last_run": None if row.last_run is None else summary_json(row.last_run),
                "delivered": row.delivered,
                "on_server": row.on_server,
                "gone": row.gone,
                "bytes_on_server": row.bytes_on_server,
                "skipped": [
                    {"uid": r.uid, "size": r.size, "since": _time(r.refused_at),
                     "reason": r.reason}
                    for r in row.skipped
                ],
            }
            for row in rows
        ]
    }


def schedule_lines(
    planned: Sequence[PlannedDeletion], now: datetime, utc: bool = False
) -> list[str]:
    """Deletions grouped per account and day: "isp 2026-12-13: 4 messages (1.2 MB)";
    days in the user's time zone (``utc``: UTC days)."""
    if not planned:
        return ["nothing is scheduled for deletion"]
    groups: dict[tuple[str, str], list[PlannedDeletion]] = {}
    for p in planned:
        day = ("next fetch" if p.due_now
               else _local(p.due_at or now, utc).date().isoformat() + (" (UTC)" if utc else ""))
        groups.setdefault((p.account, day), []).append(p)
    return [
        f"{account} {day}: {len(items)} messages ({size_text(sum(i.size for i in items))})"
        for (account, day), items in groups.items()
    ]


def schedule_json(planned: Sequence[PlannedDeletion]) -> dict[str, Any]:
    return {
        "deletions": [
            {
                "account": p.account,
                "uid": p.uid,
                "size": p.size,
                "due_at": _time(p.due_at),
                "due_now": p.due_now,
                "reason": p.reason,
            }
            for p in planned
        ]
    }

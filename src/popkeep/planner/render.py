"""The plan as text for people (the default output of ``popkeep plan``).

Owns: wording and layout. Must not: compute anything a report does not hold,
or do I/O (the CLI prints the returned string).
"""

from __future__ import annotations

from popkeep.planner.advice import the
from popkeep.planner.report import DeviceReport, Plan
from popkeep.planner.schedule import format_point
from popkeep.planner.units import format_octets, format_seconds

_HEADER = ("device", "retention", "checks", "received", "missed", "pending", "longest gap")


def render(plan: Plan) -> str:
    """The whole plan: summary, device table, stories, quota, recommendations."""
    parts = [_summary(plan), _table(plan.devices), *_stories(plan), _quota(plan), _advice(plan)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _summary(plan: Plan) -> str:
    sc = plan.scenario
    where = f" from {sc.start}" if sc.start else ""
    mail = ""
    if sc.mail is not None:
        mail = f" ({sc.mail.per_day:g}/day, mean {format_octets(sc.mail.mean_size)})"
    quota = f", quota {format_octets(sc.quota)}" if sc.quota is not None else ", no quota"
    start = f", {format_octets(sc.initial_usage)} already on the server" if sc.initial_usage else ""
    return (f"Simulated {format_seconds(sc.horizon)}{where}: {plan.messages} messages"
            f"{mail}{quota}{start}.")  # fmt: skip


def _row(r: DeviceReport) -> tuple[str, ...]:
    name = f"{r.name} (popkeep)" if r.collector else r.name
    gap = "never checks" if r.longest_gap is None else format_seconds(r.longest_gap)
    return (name, format_seconds(r.retention), str(r.checks), str(r.received),
            str(r.missed), str(r.pending), gap)  # fmt: skip


def _table(devices: tuple[DeviceReport, ...]) -> str:
    rows = [_HEADER, *(_row(r) for r in devices)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(_HEADER))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[k].rjust(widths[k]) for k in range(2, 6)] + [row[6]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _stories(plan: Plan) -> list[str]:
    out = []
    for r in plan.devices:
        if r.first_missed is None:
            continue
        why = ""
        if r.missed_refused and r.missed_deleted:
            why = f" ({r.missed_deleted} deleted before it looked, {r.missed_refused} refused)"
        noun = "message" if r.missed == 1 else "messages"
        out.append(f"{the(r.name, start=True)} misses {r.missed} {noun}{why}. The first one: "
                   f"{r.first_missed.text}.")  # fmt: skip
    return out


def _quota(plan: Plan) -> str:
    q = plan.quota
    limit = f" of {format_octets(q.limit)}" if q.limit is not None else ""
    line = f"Server usage peaks at {format_octets(q.peak)}{limit} on {format_point(q.peak_at)}"
    if q.full_at is None:
        return line + ("; the mailbox never fills." if q.limit is not None else ".")
    return (f"{line}. The mailbox first fills on {format_point(q.full_at)}; whenever it "
            f"is full, new mail is refused: {q.refused} messages, "
            "lost for every device.")  # fmt: skip


def _advice(plan: Plan) -> str:
    return "\n".join(f"* {line}" for line in plan.recommendation.advice)

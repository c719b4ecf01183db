"""What a simulation means for people: per-device counts, stories, the quota curve.

Owns: turning a :class:`~popkeep.planner.model.Simulation` into frozen report
objects, and the stable ``--json`` shape (:func:`to_json`, schema in
docs/planner.md). Must not: do I/O or choose settings (``advice`` does).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any

from popkeep.planner.advice import Recommendation, recommend, the
from popkeep.planner.model import DAY, INF, Scenario, Simulation, longest_gap, outcome, simulate
from popkeep.planner.schedule import format_point
from popkeep.planner.units import format_octets, format_seconds

SCHEMA = "popkeep.plan/1"


@dataclass(frozen=True, slots=True)
class Story:
    """How one device came to miss one message."""

    message: int
    arrived: float
    size: int
    refused: bool
    fetched_by: str | None
    fetched_at: float | None
    deleted_by: str | None
    deleted_at: float | None
    next_check: float | None  #: the missing device's first check after the arrival
    text: str


@dataclass(frozen=True, slots=True)
class DeviceReport:
    name: str
    collector: bool
    retention: float | None
    schedule: str
    checks: int
    received: int
    missed: int
    missed_deleted: int
    missed_refused: int
    pending: int
    longest_gap: float | None
    first_missed: Story | None


@dataclass(frozen=True, slots=True)
class QuotaReport:
    limit: int | None
    initial: int
    peak: int
    peak_at: float
    full_at: float | None
    refused: int
    end_usage: int
    usage_by_day: tuple[int, ...]  #: the highest usage of each day


@dataclass(frozen=True, slots=True)
class Plan:
    scenario: Scenario
    simulation: Simulation
    messages: int
    devices: tuple[DeviceReport, ...]
    quota: QuotaReport
    recommendation: Recommendation


def build_plan(sc: Scenario) -> Plan:
    """Simulate ``sc`` and report on it, with recommendations."""
    sim = simulate(sc)
    devices = tuple(_device_report(sim, d) for d in range(len(sc.devices)))
    return Plan(sc, sim, len(sim.arrival), devices, quota_report(sim), recommend(sim))


def _device_report(sim: Simulation, dev: int) -> DeviceReport:
    device = sim.scenario.devices[dev]
    out = outcome(sim, dev)
    story = None if out.first_missed is None else tell(sim, dev, out.first_missed)
    return DeviceReport(
        name=device.name, collector=device.collector, retention=device.retention,
        schedule=device.schedule, checks=len(device.checks), received=out.received,
        missed=out.missed, missed_deleted=out.missed_deleted, missed_refused=out.missed_refused,
        pending=out.pending, longest_gap=longest_gap(device, sim.scenario.horizon),
        first_missed=story,
    )  # fmt: skip


def usage_at(sim: Simulation, t: float) -> int:
    """Server usage just after every event at time ``t``."""
    return sim.usage_v[bisect_right(sim.usage_t, t) - 1]


def tell(sim: Simulation, dev: int, i: int) -> Story:
    """The story of device ``dev`` missing message ``i``."""
    devices = sim.scenario.devices
    name, arrived = devices[dev].name, sim.arrival[i]
    checks = devices[dev].checks
    k = bisect_left(checks, arrived)
    next_check = checks[k] if k < len(checks) else None
    later = (f"{the(name)} next checked {format_point(next_check)}" if next_check is not None
             else f"{the(name)} did not check again")  # fmt: skip
    if not sim.accepted[i]:
        used = usage_at(sim, arrived)
        quota = format_octets(sim.scenario.quota or 0)
        text = (f"arrived {format_point(arrived)} and was refused: the mailbox was full "
                f"({format_octets(used)} of {quota} used)")  # fmt: skip
        return Story(i, arrived, sim.size[i], True, None, None, None, None, next_check, text)
    first_dev, first_at = _first_fetch(sim, i)
    deleter, deleted_at = sim.deleted_by[i], sim.deleted_at[i]
    fetcher = devices[first_dev].name if first_dev >= 0 else None
    killer = devices[deleter].name
    parts = [f"arrived {format_point(arrived)}"]
    if fetcher is not None:
        parts.append(f"{the(fetcher)} fetched it {format_point(first_at)}")
    reason = format_seconds(devices[deleter].retention)
    parts.append(f"{the(killer)} deleted it {format_point(deleted_at)} ({reason} retention)")
    parts.append(later)
    return Story(i, arrived, sim.size[i], False, fetcher, first_at if fetcher else None,
                 killer, deleted_at, next_check, ", ".join(parts))  # fmt: skip


def _first_fetch(sim: Simulation, i: int) -> tuple[int, float]:
    best, when = -1, INF
    for d, fetched in enumerate(sim.fetched_at):
        if fetched[i] < when:
            best, when = d, fetched[i]
    return best, when


def quota_report(sim: Simulation) -> QuotaReport:
    sc = sim.scenario
    days = max(1, int(-(-sc.horizon // DAY)))
    by_day = [0] * days
    level = sc.initial_usage
    j = 0
    ts, vs = sim.usage_t, sim.usage_v
    for day in range(days):
        peak = level  # the level carried in from the previous day
        end = (day + 1) * DAY
        while j < len(ts) and ts[j] < end:
            level = vs[j]
            peak = max(peak, level)
            j += 1
        by_day[day] = peak
    return QuotaReport(sc.quota, sc.initial_usage, sim.peak_usage, sim.peak_at, sim.full_at,
                       sim.refused, sim.usage_v[-1], tuple(by_day))  # fmt: skip


def _story_json(story: Story | None) -> dict[str, Any] | None:
    if story is None:
        return None
    return {
        "message": story.message, "arrived_s": story.arrived, "size": story.size,
        "refused": story.refused, "fetched_by": story.fetched_by, "fetched_s": story.fetched_at,
        "deleted_by": story.deleted_by, "deleted_s": story.deleted_at,
        "next_check_s": story.next_check, "text": story.text,
    }  # fmt: skip


def _device_json(r: DeviceReport) -> dict[str, Any]:
    return {
        "name": r.name, "collector": r.collector, "retention_s": r.retention,
        "schedule": r.schedule, "checks": r.checks, "received": r.received, "missed": r.missed,
        "missed_deleted": r.missed_deleted, "missed_refused": r.missed_refused,
        "pending": r.pending, "longest_gap_s": r.longest_gap,
        "first_missed": _story_json(r.first_missed),
    }  # fmt: skip


def to_json(plan: Plan) -> dict[str, Any]:
    """The documented ``--json`` shape (docs/planner.md, schema ``popkeep.plan/1``).

    Times are seconds since day 1 00:00 (keys ending ``_s``), sizes are octets,
    ``null`` means "never" / "none"."""
    sc, q, rec = plan.scenario, plan.quota, plan.recommendation
    return {
        "schema": SCHEMA,
        "scenario": {"start": sc.start or None, "horizon_s": sc.horizon, "seed": sc.seed,
                     "messages": plan.messages, "quota": sc.quota,
                     "initial_usage": sc.initial_usage},
        "devices": [_device_json(r) for r in plan.devices],
        "quota": {"limit": q.limit, "initial": q.initial, "peak": q.peak, "peak_s": q.peak_at,
                  "full_s": q.full_at, "refused": q.refused, "end_usage": q.end_usage,
                  "usage_by_day": list(q.usage_by_day)},
        "recommendation": rec.to_json(),
    }  # fmt: skip

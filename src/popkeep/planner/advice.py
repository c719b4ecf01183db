"""Which retention to set: the recommendation logic of ``popkeep plan``.

Owns: the smallest retention that makes no device miss a message, the largest
that stays under the quota, and the fallback to the central-collector setup
when both cannot hold; each checked by simulating it. Must not: do I/O.

- Smallest safe: a message can be fetched (and its clock started) just after a
  device's check; that device sees it at its next check, at most its longest
  gap ``G`` later. Any retention ``> G`` is safe, whatever the others do, so we
  recommend the whole days just above ``G`` plus one day of margin.
- Largest under quota: with retention ``R`` the server holds about
  ``R × daily volume``; we keep 10% headroom for bursts:
  ``floor(0.9 × (quota − initial usage) / daily volume)`` whole days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from popkeep.planner.model import DAY, Device, Scenario, Simulation, longest_gap, outcome, simulate
from popkeep.planner.units import format_octets, format_seconds

HEADROOM = 0.9
COLLECTOR_EVERY = 300.0  #: popkeep's own polling interval in the central-collector setup
COLLECTOR_GRACE = 7 * DAY  #: what popkeep keeps on the server there, quota permitting


@dataclass(frozen=True, slots=True)
class Recommendation:
    """Recommended settings and the simulated outcome of following them.

    ``largest_under_quota`` is ``None`` when there is no quota (or no mail):
    any retention, "never" included, fits."""

    longest_gap: float | None
    gap_device: str | None
    smallest_safe: float | None  #: ``None``: some device never checks, nothing is safe
    largest_under_quota: float | None
    daily_volume: float
    compatible: bool
    central_collector: bool
    safe_missed: int | None = None  #: misses when every device uses ``smallest_safe``
    safe_peak: int | None = None
    collector_retention: float | None = None
    collector_peak: int | None = None
    advice: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "longest_gap_s": self.longest_gap, "gap_device": self.gap_device,
            "smallest_safe_s": self.smallest_safe,
            "largest_under_quota_s": self.largest_under_quota,
            "daily_volume": self.daily_volume, "compatible": self.compatible,
            "central_collector": self.central_collector, "safe_missed": self.safe_missed,
            "safe_peak": self.safe_peak, "collector_retention_s": self.collector_retention,
            "collector_peak": self.collector_peak, "advice": list(self.advice),
        }  # fmt: skip


def the(name: str, *, start: bool = False) -> str:
    """A device in a sentence: "the phone" ("The phone" to start one), but "popkeep"."""
    if name == "popkeep":
        return name
    return f"{'The' if start else 'the'} {name}"


def daily_volume(sim: Simulation) -> float:
    """Expected octets arriving per day: the mail model's, else the measured one."""
    sc = sim.scenario
    if sc.mail is not None and sc.messages is None:
        return sc.mail.per_day * sc.mail.mean_size
    return sum(sim.size) / (sc.horizon / DAY) if sc.horizon > 0 else 0.0


def smallest_safe(gap: float) -> float:
    """Whole days strictly above ``gap``, plus one day of margin."""
    return (math.floor(gap / DAY) + 2) * DAY


def largest_under_quota(sc: Scenario, volume: float) -> float | None:
    if sc.quota is None or volume <= 0:
        return None
    room = HEADROOM * (sc.quota - sc.initial_usage)
    return max(0.0, math.floor(room / volume)) * DAY


def _longest(sc: Scenario) -> tuple[float | None, str | None, bool]:
    """The longest gap over all devices, its device, and whether every device checks."""
    best: float | None = None
    who: str | None = None
    for device in sc.devices:
        gap = longest_gap(device, sc.horizon)
        if gap is None:
            return None, device.name, False
        if best is None or gap > best:
            best, who = gap, device.name
    return best, who, True


def recommend(sim: Simulation) -> Recommendation:
    """Recommend settings for ``sim``'s scenario, verified by simulation."""
    sc = sim.scenario
    gap, who, all_check = _longest(sc)
    volume = daily_volume(sim)
    largest = largest_under_quota(sc, volume)
    safe = smallest_safe(gap) if gap is not None and all_check else None
    compatible = safe is not None and (largest is None or safe <= largest)
    safe_missed = safe_peak = None
    if safe is not None:
        checked = simulate(sc.with_retention(safe))
        safe_missed = sum(outcome(checked, d).missed for d in range(len(sc.devices)))
        safe_peak = checked.peak_usage
    rec = Recommendation(gap, who, safe, largest, volume, compatible, not compatible,
                         safe_missed, safe_peak)  # fmt: skip
    if not compatible:
        rec = _with_collector(rec, sc, largest)
    return _with_advice(rec, sc)


def _with_collector(rec: Recommendation, sc: Scenario, largest: float | None) -> Recommendation:
    """Simulate popkeep alone on the server (devices read the central mailbox), keeping
    as much as fits: 7 days, or shorter until nothing is refused (down to 0s)."""
    keep = COLLECTOR_GRACE if largest is None else min(COLLECTOR_GRACE, largest)
    checks = tuple(k * COLLECTOR_EVERY for k in range(int(sc.horizon // COLLECTOR_EVERY) + 1))
    checks = tuple(t for t in checks if t < sc.horizon)
    candidates = sorted({keep, 3 * DAY, DAY, 0.0}, reverse=True)
    for retention in [c for c in candidates if c <= keep]:
        popkeep = Device("popkeep", checks, retention, True, "every 5m")
        alone = simulate(replace(sc, devices=(popkeep,)))
        if alone.refused == 0:
            break
    return replace(rec, collector_retention=retention, collector_peak=alone.peak_usage)


def _with_advice(rec: Recommendation, sc: Scenario) -> Recommendation:
    lines = [*_zero_warnings(sc)]
    if rec.smallest_safe is None:
        who = the(rec.gap_device or "", start=True)
        lines.append(f"{who} never checks within the horizon: no retention lets it see "
                     "every message.")  # fmt: skip
    else:
        lines.append(
            f"Every device sees every message if all delete after at least "
            f"{format_seconds(rec.smallest_safe)} (the longest gap between checks is "
            f"{format_seconds(rec.longest_gap)}, {the(rec.gap_device or '')}'s, "
            "plus one day margin)."
        )
    if rec.largest_under_quota is None:
        lines.append("There is no quota limit to respect: keeping mail longer costs nothing.")
    else:
        lines.append(
            f"At about {format_octets(rec.daily_volume)} a day, retention up to "
            f"{format_seconds(rec.largest_under_quota)} stays under the "
            f"{format_octets(sc.quota or 0)} quota (10% headroom)."
        )
    lines.extend(_verdict(rec))
    return replace(rec, advice=tuple(lines))


def _zero_warnings(sc: Scenario) -> list[str]:
    if len(sc.devices) < 2:
        return []
    zero = [d.name for d in sc.devices if d.retention == 0]
    if len(zero) == len(sc.devices):
        lines = ["Every device deletes at download (0s): each misses what another fetches first."]
    else:
        lines = [f"{the(n, start=True)} deletes at download (0s): every other device misses "
                 "what it fetches first." for n in zero]  # fmt: skip
    if any(d.collector for d in sc.devices):
        lines.append(
            "popkeep is simulated here as one more POP client; in the central-collector "
            "setup the other devices read popkeep's mailbox instead and miss nothing."
        )
    return lines


def _verdict(rec: Recommendation) -> list[str]:
    if rec.compatible:
        safe = format_seconds(rec.smallest_safe)
        lines = [f"Recommended: set every device to delete after {safe}."]
        if rec.safe_missed:
            lines.append(f"(Simulated with it, {rec.safe_missed} messages are still missed: "
                         "check the quota.)")  # fmt: skip
        return lines
    lines = []
    if rec.smallest_safe is not None:
        lines.append("Both cannot hold: no retention lets every device see every message "
                     "and stays under the quota.")  # fmt: skip
    lines.append(
        "Recommended: the central-collector setup. popkeep fetches every 5 minutes into one "
        "mailbox (IMAP, Maildir or Gmail) and your devices read that mailbox instead of POP, "
        "so none of them can miss a message."
    )
    if rec.collector_retention is not None and rec.collector_peak is not None:
        lines.append(f"popkeep can then delete after {format_seconds(rec.collector_retention)}; "
                     f"the server peaks at {format_octets(rec.collector_peak)}.")  # fmt: skip
    return lines

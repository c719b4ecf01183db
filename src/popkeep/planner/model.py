"""The multi-device retention simulation: a pure discrete-event model.

Owns: the scenario value types (already parsed: every time is a float of
seconds since the scenario start, ``t = 0`` being "day 1 00:00"), the arrival
stream (Poisson, log-normal sizes, deterministic under ``seed``), and the
simulation itself. Must not: do I/O, read the clock, or import the transport,
state or sink layers (an import-linter contract says so).

The semantics (docs/planner.md states them for users):

- A message arrives; if the server's usage plus its size exceeds the quota it
  is refused (bounced): nobody ever gets it.
- At each of its checks a device downloads every message on the server it has
  not downloaded yet (a POP client remembers UIDLs, RFC 1939 §7 UIDL), then
  deletes (DELE) every message it downloaded whose *own* retention has elapsed
  since *its own* download. So a message is deleted at the first check, by any
  device that holds it, at or after that device's download + retention; the
  first device to download it normally starts the earliest clock. "0s" deletes
  in the same check that downloads; ``None`` ("never") never deletes.
- Events at equal times: arrivals first, then checks in device order.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace

DAY = 86400.0
INF = math.inf


@dataclass(frozen=True, slots=True)
class MailModel:
    """Random arrivals: Poisson at ``per_day``, log-normal sizes with arithmetic mean
    ``mean_size`` octets and log-space standard deviation ``size_sigma``."""

    per_day: float
    mean_size: int
    size_sigma: float = 1.0


@dataclass(frozen=True, slots=True)
class Device:
    """One mail client. ``checks`` are sorted times (off periods already removed);
    ``retention`` is seconds, ``None`` for never."""

    name: str
    checks: tuple[float, ...]
    retention: float | None
    collector: bool = False
    schedule: str = ""  #: the schedule as the user wrote it, for display


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything a simulation needs. Exactly one of ``mail`` / ``messages`` drives
    arrivals; ``messages`` are explicit ``(time, size)`` pairs."""

    horizon: float
    devices: tuple[Device, ...]
    mail: MailModel | None = None
    messages: tuple[tuple[float, int], ...] | None = None
    quota: int | None = None
    initial_usage: int = 0  #: octets already on the server, never deleted by these devices
    seed: int = 0
    start: str = ""  #: ISO date of day 1, for display only

    def with_retention(self, retention: float | None) -> Scenario:
        """The same scenario with every device set to ``retention``."""
        devices = tuple(_replace_retention(d, retention) for d in self.devices)
        return replace(self, devices=devices)


def _replace_retention(device: Device, retention: float | None) -> Device:
    return replace(device, retention=retention)


@dataclass(frozen=True, slots=True)
class Simulation:
    """What happened to every message. Index ``i`` is the i-th arrival.

    ``fetched_at[d][i]`` is when device ``d`` downloaded message ``i`` (``inf``:
    never); ``deleted_at[i]`` / ``deleted_by[i]`` (``inf`` / ``-1``: never);
    ``usage_t`` / ``usage_v`` the server usage after every change (a step curve).
    """

    scenario: Scenario
    arrival: Sequence[float]
    size: Sequence[int]
    accepted: Sequence[int]
    fetched_at: Sequence[Sequence[float]]
    deleted_at: Sequence[float]
    deleted_by: Sequence[int]
    usage_t: Sequence[float]
    usage_v: Sequence[int]
    peak_usage: int
    peak_at: float
    full_at: float | None  #: the first refusal ("the mailbox fills"), if any
    refused: int


@dataclass(frozen=True, slots=True)
class DeviceOutcome:
    """Counts for one device. ``missed = missed_deleted + missed_refused``;
    ``pending`` messages were still on the server, unfetched, at the horizon."""

    received: int
    missed_deleted: int
    missed_refused: int
    pending: int
    first_missed: int | None  #: index of the earliest missed message

    @property
    def missed(self) -> int:
        return self.missed_deleted + self.missed_refused


def arrivals(sc: Scenario) -> tuple[list[float], list[int]]:
    """Arrival times (sorted, ``0 ≤ t < horizon``) and sizes; deterministic under ``sc.seed``."""
    if sc.messages is not None:
        pairs = sorted(p for p in sc.messages if 0 <= p[0] < sc.horizon)
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if sc.mail is None or sc.mail.per_day <= 0:
        return [], []
    rng = random.Random(sc.seed)
    rate = sc.mail.per_day / DAY
    sigma = sc.mail.size_sigma
    # E[lognormal(mu, sigma)] = exp(mu + sigma²/2), so this mu keeps the mean at mean_size.
    mu = math.log(max(sc.mail.mean_size, 1)) - sigma * sigma / 2
    times: list[float] = []
    sizes: list[int] = []
    gap, gauss, exp = rng.expovariate, rng.gauss, math.exp
    t = gap(rate)
    while t < sc.horizon:
        times.append(t)
        sizes.append(max(1, round(exp(mu + sigma * gauss()))))
        t += gap(rate)
    return times, sizes


def _check_events(devices: Sequence[Device]) -> list[tuple[float, int]]:
    """All checks of all devices in event order: by time, then device order."""
    return sorted([(t, d) for d, dev in enumerate(devices) for t in dev.checks])


class _Run:
    """Mutable state of one simulation; :func:`simulate` is its only user."""

    def __init__(self, sc: Scenario, times: list[float], sizes: list[int]) -> None:
        n, ndev = len(times), len(sc.devices)
        self.sc, self.times, self.sizes = sc, times, sizes
        self.quota = sc.quota if sc.quota is not None else None
        self.retention = [INF if d.retention is None else d.retention for d in sc.devices]
        self.present = bytearray(n)
        self.accepted = bytearray(n)
        self.fetched = [array("d", [INF]) * n for _ in range(ndev)]
        self.deleted_at = array("d", [INF]) * n
        self.deleted_by = array("i", [-1]) * n
        self.cursor = [0] * ndev  # every message below it was looked at by that device
        self.clocks: list[deque[tuple[float, int]]] = [deque() for _ in range(ndev)]
        self.arrived = 0
        self.usage = sc.initial_usage
        self.usage_t, self.usage_v = array("d", [0.0]), array("q", [self.usage])
        self.peak, self.peak_at = self.usage, 0.0
        self.full_at: float | None = None
        self.refused = 0

    def arrive_until(self, now: float) -> None:
        """Deliver every arrival at or before ``now`` to the server (or refuse it)."""
        times, sizes, i, usage = self.times, self.sizes, self.arrived, self.usage
        quota = INF if self.quota is None else self.quota
        while i < len(times) and times[i] <= now:
            if usage + sizes[i] > quota:
                self.refused += 1
                if self.full_at is None:
                    self.full_at = times[i]
            else:
                self.present[i] = self.accepted[i] = 1
                usage += sizes[i]
                self.usage_t.append(times[i])
                self.usage_v.append(usage)
                if usage > self.peak:  # usage only rises here
                    self.peak, self.peak_at = usage, times[i]
            i += 1
        self.arrived, self.usage = i, usage

    def check(self, now: float, dev: int) -> None:
        """One check of device ``dev``: download what is new to it, then DELE what expired."""
        clock, present = self.clocks[dev], self.present
        arrived, begin = self.arrived, self.cursor[dev]
        if begin < arrived:
            fetched, deadline = self.fetched[dev], now + self.retention[dev]
            for i in range(begin, arrived):
                if present[i]:
                    fetched[i] = now
                    clock.append((deadline, i))
            self.cursor[dev] = arrived
        if clock and clock[0][0] <= now:
            self._expire(now, dev, clock)

    def _expire(self, now: float, dev: int, clock: deque[tuple[float, int]]) -> None:
        """DELE every message whose deadline on ``dev``'s clock has come (RFC 1939 §5 DELE)."""
        present, freed = self.present, 0
        while clock and clock[0][0] <= now:
            _, i = clock.popleft()
            if present[i]:
                present[i] = 0
                self.deleted_at[i], self.deleted_by[i] = now, dev
                freed += self.sizes[i]
        if freed:
            self.usage -= freed
            self.usage_t.append(now)
            self.usage_v.append(self.usage)


def simulate(sc: Scenario) -> Simulation:
    """Run the scenario to its horizon. Pure and deterministic; O((messages + checks) · log devices)
    apart from each device looking at each message once."""
    times, sizes = arrivals(sc)
    run = _Run(sc, times, sizes)
    times_next = times[0] if times else INF
    cursor, clocks = run.cursor, run.clocks
    for now, dev in _check_events(sc.devices):
        if now >= sc.horizon:
            break
        if times_next <= now:
            run.arrive_until(now)
            times_next = times[run.arrived] if run.arrived < len(times) else INF
        clock = clocks[dev]
        # Fast path: nothing new for this device and none of its clocks ran out.
        if cursor[dev] < run.arrived or (clock and clock[0][0] <= now):
            run.check(now, dev)
    run.arrive_until(sc.horizon - 1e-9)
    return Simulation(
        scenario=sc, arrival=times, size=sizes, accepted=run.accepted,
        fetched_at=run.fetched, deleted_at=run.deleted_at, deleted_by=run.deleted_by,
        usage_t=run.usage_t, usage_v=run.usage_v, peak_usage=run.peak, peak_at=run.peak_at,
        full_at=run.full_at, refused=run.refused,
    )  # fmt: skip


def outcome(sim: Simulation, dev: int) -> DeviceOutcome:
    """Received / missed / pending counts of device ``dev``.

    Missed: refused by the full server, or deleted before this device fetched it.
    """
    fetched, deleted, accepted = sim.fetched_at[dev], sim.deleted_at, sim.accepted
    received = deleted_miss = refused_miss = pending = 0
    first: int | None = None
    for i in range(len(sim.arrival)):
        if fetched[i] != INF:
            received += 1
            continue
        if not accepted[i]:
            refused_miss += 1
        elif deleted[i] != INF:
            deleted_miss += 1
        else:
            pending += 1
            continue
        if first is None:
            first = i
    return DeviceOutcome(received, deleted_miss, refused_miss, pending, first)


def longest_gap(device: Device, horizon: float) -> float | None:
    """The longest time without a check, counting from the start (mail may arrive at
    ``t = 0``) but not the tail after the last check. ``None`` if it never checks."""
    checks = [t for t in device.checks if t < horizon]
    if not checks:
        return None
    gap, previous = checks[0], checks[0]
    for t in checks[1:]:
        gap = max(gap, t - previous)
        previous = t
    return gap

"""Properties of the simulation (hypothesis), and the cases where intuition fails."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from popkeep.planner.model import DAY, Device, Scenario, outcome, simulate

HORIZON = 30 * DAY
MINUTE = 60.0
# Times on a coarse grid so that ties (arrival and check, two checks) happen often.
times = st.integers(min_value=0, max_value=int(HORIZON // (30 * MINUTE)) - 1).map(
    lambda k: k * 30 * MINUTE
)
retentions = st.sampled_from([0.0, 30 * MINUTE, 6 * 3600.0, DAY, 3 * DAY, 7 * DAY, 14 * DAY, None])


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(min_value=1, max_value=4))
    devices = tuple(
        Device(f"d{k}", tuple(sorted(set(draw(st.lists(times, max_size=12))))), draw(retentions))
        for k in range(count)
    )
    messages = tuple((t, 1000) for t in draw(st.lists(times, min_size=1, max_size=25)))
    return Scenario(HORIZON, devices, messages=messages)


def longer(a: float | None, b: float | None) -> float | None:
    """The larger of two retentions (None = never)."""
    if a is None or b is None:
        return None
    return max(a, b)


def misses(sc: Scenario) -> list[int]:
    sim = simulate(sc)
    return [outcome(sim, d).missed for d in range(len(sc.devices))]


@settings(max_examples=200, deadline=None)
@given(scenarios(), retentions, retentions)
def test_without_quota_a_longer_uniform_retention_never_adds_misses(
    sc: Scenario, a: float | None, b: float | None
) -> None:
    short, long = (a, longer(a, b))
    before, after = misses(sc.with_retention(short)), misses(sc.with_retention(long))
    assert all(x >= y for x, y in zip(before, after, strict=True)), (before, after)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_without_quota_one_device_keeping_longer_never_adds_misses(
    sc: Scenario, data: st.DataObject
) -> None:
    dev = data.draw(st.integers(min_value=0, max_value=len(sc.devices) - 1))
    more = longer(sc.devices[dev].retention, data.draw(retentions))
    devices = list(sc.devices)
    devices[dev] = replace(devices[dev], retention=more)
    after = misses(replace(sc, devices=tuple(devices)))
    assert all(x >= y for x, y in zip(misses(sc), after, strict=True))


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_adding_checks_never_adds_misses_to_that_device(sc: Scenario, data: st.DataObject) -> None:
    dev = data.draw(st.integers(min_value=0, max_value=len(sc.devices) - 1))
    extra = data.draw(st.lists(times, min_size=1, max_size=6))
    devices = list(sc.devices)
    devices[dev] = replace(devices[dev], checks=tuple(sorted({*devices[dev].checks, *extra})))
    after = misses(replace(sc, devices=tuple(devices)))
    assert after[dev] <= misses(sc)[dev]


def test_with_a_quota_a_longer_retention_can_add_misses() -> None:
    """The counterexample to the first property once the quota binds: keeping mail longer
    fills the mailbox and new mail is refused, for everyone."""
    messages = tuple((d * DAY + 8 * 3600, 400) for d in range(10))
    desktop = Device("desktop", tuple(d * DAY + 20 * 3600 for d in range(12)), None)
    sc = Scenario(12 * DAY, (desktop,), messages=messages, quota=1000)
    assert misses(sc.with_retention(DAY)) == [0]
    assert misses(sc.with_retention(3 * DAY)) == [4]  # refused: days 3, 4, 7, 8
    assert misses(sc.with_retention(None)) == [8]

"""The plan as a picture (``popkeep plan --plot FILE.png|FILE.svg``).

Owns: the figure: one lane per device (its checks as ticks, each message it
fetched as a green dot at the fetch time, each one it missed as a red cross at
the arrival time) above the server usage curve with the quota line.
Must not: compute results. matplotlib is imported lazily (it is the ``plot``
extra) and always with the non-interactive Agg backend.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from popkeep.errors import ConfigError
from popkeep.planner.advice import the
from popkeep.planner.model import DAY, INF, outcome
from popkeep.planner.report import Plan

log = logging.getLogger(__name__)

_FORMATS = {".png": "png", ".svg": "svg"}
_MAX_DOTS = 3000  #: per device and kind; denser series are thinned evenly


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'popkeep[plot]'") from exc
    return plt


def _thin(values: list[float]) -> list[float]:
    if len(values) <= _MAX_DOTS:
        return values
    step = len(values) / _MAX_DOTS
    return [values[int(k * step)] for k in range(_MAX_DOTS)]


def save_plot(plan: Plan, path: Path) -> None:
    """Write the figure to ``path``; the format follows the suffix (.png or .svg)."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--plot: {path.name}: the file name must end in .png or .svg")
    plt = _pyplot()
    lanes = len(plan.devices)
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 2.2 + 0.7 * lanes + 3),
        gridspec_kw={"height_ratios": [0.7 * lanes + 0.6, 3]},
    )  # fmt: skip
    try:
        _lanes(top, plan)
        _usage(bottom, plan)
        fig.suptitle(_title(plan), fontsize=12)
        fig.tight_layout()
        fig.savefig(path, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    log.debug("plan plot written to %s", path)


def _title(plan: Plan) -> str:
    days = plan.scenario.horizon / DAY
    title = f"popkeep plan: {plan.messages} messages over {days:g} days"
    if plan.quota.refused:
        title += f", {plan.quota.refused} refused by the full mailbox"
    worst = max(plan.devices, key=lambda r: r.missed)
    if worst.missed:
        title += f"; {the(worst.name)} misses {worst.missed}"
    else:
        title += "; no device misses a message"
    return title


def _lanes(ax: Any, plan: Plan) -> None:
    sim = plan.simulation
    names = []
    for dev, report in enumerate(plan.devices):
        y = len(plan.devices) - 1 - dev
        names.append(f"{report.name}\n{report.received} got, {report.missed} missed")
        checks = [1 + t / DAY for t in sim.scenario.devices[dev].checks]
        ax.eventplot([checks], lineoffsets=y, linelengths=0.4, colors="0.72", linewidths=0.6)
        got = [1 + t / DAY for t in sim.fetched_at[dev] if t != INF]
        ax.scatter(_thin(got), [y + 0.3] * len(_thin(got)), s=9, c="tab:green", marker="o",
                   linewidths=0, label="fetched" if dev == 0 else None)  # fmt: skip
        missed = _missed_days(plan, dev)
        ax.scatter(_thin(missed), [y - 0.3] * len(_thin(missed)), s=22, c="tab:red",
                   marker="x", linewidths=1.2, label="missed" if dev == 0 else None)  # fmt: skip
    ax.set_yticks(range(len(names)), list(reversed(names)))
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.set_title("Devices: grey ticks = checks, green = fetched, red × = missed (at arrival)",
                 fontsize=10, loc="left")  # fmt: skip
    ax.grid(axis="x", color="0.9")


def _missed_days(plan: Plan, dev: int) -> list[float]:
    sim = plan.simulation
    if outcome(sim, dev).missed == 0:
        return []
    fetched, deleted, accepted = sim.fetched_at[dev], sim.deleted_at, sim.accepted
    return [1 + sim.arrival[i] / DAY for i in range(len(sim.arrival))
            if fetched[i] == INF and (not accepted[i] or deleted[i] != INF)]  # fmt: skip


def _usage(ax: Any, plan: Plan) -> None:
    sim, q = plan.simulation, plan.quota
    end = 1 + sim.scenario.horizon / DAY
    days = [1 + t / DAY for t in sim.usage_t] + [end]
    mb = [v / 1e6 for v in sim.usage_v]
    ax.step(days, [*mb, mb[-1]], where="post", color="tab:blue", linewidth=1.2)
    ax.annotate(f"peak {q.peak / 1e6:.3g} MB", (1 + q.peak_at / DAY, q.peak / 1e6),
                xytext=(0, 6), textcoords="offset points", ha="center", fontsize=9,
                color="tab:blue")  # fmt: skip
    top = max(q.peak, q.limit or 0) / 1e6
    if q.limit is not None:
        ax.axhline(q.limit / 1e6, color="tab:red", linestyle="--", linewidth=1.2)
        ax.annotate(f"quota {q.limit / 1e6:g} MB", (end, q.limit / 1e6), xytext=(-4, 4),
                    textcoords="offset points", ha="right", color="tab:red",
                    fontsize=9)  # fmt: skip
    if q.full_at is not None:
        ax.axvline(1 + q.full_at / DAY, color="tab:red", linewidth=0.8, alpha=0.6)
        ax.annotate(f"full on day {int(q.full_at // DAY) + 1}:\nnew mail refused",
                    (1 + q.full_at / DAY, top * 0.3), xytext=(6, 0), textcoords="offset points",
                    color="tab:red", fontsize=9,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip
    ax.set_ylim(bottom=0, top=top * 1.15 or 1)
    ax.set_xlim(1, end)
    ax.set_title("Server usage (blue) and the provider's quota (red)", fontsize=10, loc="left")
    ax.set_ylabel("MB on the server")
    ax.set_xlabel("day")
    ax.grid(color="0.9")

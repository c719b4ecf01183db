"""The dashboard's Planner page: the planner's scenario as a form, and its result.

Owns: the form's fields and their defaults (the user's measured mail volume when
the store has one), the 14-day example of docs/planner.md, turning the fields
into the planner's raw scenario table, and the result as rows, sentences and
pictures. Must not: simulate or advise itself (``popkeep.planner`` does, the same
code as ``popkeep plan``), do I/O, or know HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from popkeep.errors import ConfigError
from popkeep.planner.advice import the
from popkeep.planner.report import Plan, build_plan
from popkeep.planner.scenario import scenario_from_dict
from popkeep.planner.schedule import format_point
from popkeep.planner.units import format_octets, format_seconds
from popkeep.service import charts
from popkeep.service.words import Lang, messages, say

FIELDS = ("devices", "retention", "quota", "per_day", "mean_size", "messages", "horizon")

#: what the form holds before the user changes anything
DEFAULTS: dict[str, str] = {
    "devices": "phone = every 2h, 07:00-23:00\ndesktop = daily 20:00\nlaptop = every 18d",
    "retention": "14d", "quota": "1GB", "per_day": "40", "mean_size": "80KB", "messages": "",
    "horizon": "60d",
}  # fmt: skip

#: the example of docs/planner.md: the phone fetches a message on day 1 and deletes
#: it on day 15; the desktop (day 7) gets it, the laptop (day 18) never does
EXAMPLE: dict[str, str] = {
    "devices": "phone = daily 09:15\ndesktop = day 7 20:00\nlaptop = day 18 20:00",
    "retention": "14d", "quota": "", "per_day": "", "mean_size": "", "messages": "day 1 09:12",
    "horizon": "30d",
}  # fmt: skip


def form_values(
    query: Mapping[str, str], volume: tuple[float, int] | None
) -> tuple[dict[str, str], bool]:
    """The form's fields from the query (``example=14d``: the example), else the
    defaults with the measured ``volume`` (messages a day, mean size); and whether
    the query asked for a simulation."""
    if query.get("example"):
        return dict(EXAMPLE), True
    if any(name in query for name in FIELDS):
        return {name: query.get(name, "").strip() for name in FIELDS}, True
    values = dict(DEFAULTS)
    if volume is not None:
        values["per_day"] = f"{volume[0]:.1f}"
        values["mean_size"] = f"{max(1, round(volume[1] / 1000))}KB"
    return values, False


def scenario_table(values: Mapping[str, str]) -> dict[str, Any]:
    """The planner's raw scenario (as a scenario file would give it) from the form.

    ConfigError naming the field when a device line is not ``name = schedule``."""
    raw: dict[str, Any] = {"retention": values.get("retention") or "never",
                           "horizon": values.get("horizon") or "60d"}  # fmt: skip
    if values.get("quota"):
        raw["quota"] = values["quota"]
    arrivals = [p.strip() for p in values.get("messages", "").split(",") if p.strip()]
    if arrivals:
        raw["messages"] = arrivals
    else:
        raw["mail"] = {"per_day": _number(values.get("per_day") or "0"),
                       "mean_size": values.get("mean_size") or "50KB"}  # fmt: skip
    devices = []
    for line in values.get("devices", "").splitlines():
        if not line.strip():
            continue
        name, sep, checks = line.partition("=")
        if not sep or not name.strip() or not checks.strip():
            raise ConfigError(f"devices: expected “name = schedule”, got {line.strip()!r}")
        devices.append({"name": name.strip(), "checks": checks.strip()})
    raw["device"] = devices
    return raw


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"per_day: expected a number, got {text!r}") from None


def simulate(values: Mapping[str, str], today: date) -> Plan:
    """Run the planner on the form (ConfigError with the planner's own message)."""
    return build_plan(scenario_from_dict(scenario_table(values), today, "planner"))


def result(plan: Plan, lang: Lang) -> dict[str, Any]:
    """The devices table, the stories of missed mail, the advice and the pictures."""
    rows = [{"name": r.name, "retention": format_seconds(r.retention), "checks": r.checks,
             "received": r.received, "missed": r.missed,
             "gap": "—" if r.longest_gap is None else format_seconds(r.longest_gap)}
            for r in plan.devices]  # fmt: skip
    stories = [say(lang, "misses", name=the(r.name, start=True) if lang == "en" else r.name,
                   count=r.missed, messages=messages(lang, r.missed), story=r.first_missed.text)
               for r in plan.devices if r.first_missed is not None]  # fmt: skip
    return {"rows": rows, "stories": stories,
            "advice": list(plan.recommendation.advice),
            "timeline": _timeline(plan, lang), "usage": _usage(plan, lang)}


def _timeline(plan: Plan, lang: Lang) -> str:
    sc = plan.scenario
    rows = [(d.name, d.checks) for d in sc.devices]
    marks: list[tuple[float, str, str]] = []
    for r in plan.devices:
        story = r.first_missed
        if story is None:
            continue
        marks.append((story.arrived, format_point(story.arrived), "arrived"))
        if story.deleted_at is not None:
            marks.append((story.deleted_at, format_point(story.deleted_at), "deleted"))
        break  # the first story is enough to see why
    return charts.plan_timeline(sc.horizon, rows, marks, say(lang, "planner.timeline"))


def _usage(plan: Plan, lang: Lang) -> str:
    q = plan.quota
    label = say(lang, "planner.usage") + f": {format_octets(q.peak)}"
    return charts.usage_curve(q.usage_by_day, q.limit, label)


__all__ = ["DEFAULTS", "EXAMPLE", "FIELDS", "form_values", "result", "scenario_table",
           "simulate"]

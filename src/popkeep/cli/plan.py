"""``popkeep plan``: which device misses which message, and what retention avoids it.

Owns: reading the scenario file (and, with ``--from-state``, the state store,
read-only, through ``app``: ``--state PATH``, else the ``[state]`` of the config
that ``-c``/``$POPKEEP_CONFIG`` names or that exists at the default place, else the
default database), applying the quick-use flags, reading today's date, and
printing the plan as text, JSON or a picture. Must not: simulate or decide
anything itself (``popkeep.planner`` does, purely), or read the database itself.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from popkeep.cli.common import fail, log_options, resolve_config_path
from popkeep.errors import ConfigError, PopkeepError
from popkeep.planner.history import HistoryRecord, measure
from popkeep.planner.render import render
from popkeep.planner.report import build_plan, to_json
from popkeep.planner.scenario import read_scenario, scenario_from_dict

if TYPE_CHECKING:
    from popkeep.state.base import StateStore

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _scenario_options(func: F) -> F:
    options = [
        click.option("--retention", help='What every device deletes after: "0s", "14d", "never".'),
        click.option("--quota", help='The provider\'s mailbox limit, e.g. "1GB".'),
        click.option("--horizon", help='How long to simulate (default "180d").'),
        click.option("--per-day", type=float, help="Messages a day (Poisson arrivals)."),
        click.option("--mean-size", help='Mean message size, e.g. "80KB".'),
        click.option("--size-sigma", type=float, help="Spread of the log-normal sizes."),
        click.option("--device", "devices", multiple=True, metavar='NAME="SCHEDULE"',
                     help='A device and its checks, e.g. phone="every 2h, 07:00-23:00".'),
        click.option("--collector", is_flag=True, help="Add popkeep itself (checks every 5m)."),
        click.option("--seed", type=int, help="Seed of the random arrivals."),
        click.option("--start", help="The date of day 1 (default: today)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@click.command("plan")
@click.argument("scenario", required=False, type=click.Path(path_type=Path, dir_okay=False))
@_scenario_options
@log_options
@click.option("--from-state", is_flag=True,
              help="Measure the mail rate, sizes and server usage from popkeep's state store.")
@click.option("--state", "state_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The state database (default: the config's [state] path, else "
                   "~/.local/share/popkeep/state.db).")
@click.option("--account", help="With --from-state: only this account's history.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the plan as JSON (schema popkeep.plan/1).")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False),
              help="Also draw the plan to FILE.png or FILE.svg.")  # fmt: skip
def plan(
    scenario: Path | None, from_state: bool, state_path: Path | None, account: str | None,
    as_json: bool, plot: Path | None, **flags: Any,
) -> None:  # fmt: skip
    """Simulate several POP devices sharing one mailbox (SCENARIO.toml and/or flags)."""
    try:
        raw = read_scenario(scenario) if scenario is not None else {}
        apply_flags(raw, flags)
        if from_state:
            apply_history(raw, read_history(state_path, account))
        sc = scenario_from_dict(raw, date.today(), str(scenario or "plan"))
        result = build_plan(sc)
        if plot is not None:
            from popkeep.planner.plot import save_plot

            save_plot(result, plot)
    except PopkeepError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(to_json(result), indent=2))
    else:
        click.echo(render(result), nl=False)
        if plot is not None:
            click.echo(f"\nPlot written to {plot}.")


def apply_flags(raw: dict[str, Any], flags: dict[str, Any]) -> None:
    """Overlay the quick-use flags on the raw scenario table (flags win)."""
    for key in ("retention", "quota", "horizon", "seed", "start"):
        if flags.get(key) is not None:
            raw[key] = flags[key]
    mail = {"per_day": flags.get("per_day"), "mean_size": flags.get("mean_size"),
            "size_sigma": flags.get("size_sigma")}  # fmt: skip
    if any(v is not None for v in mail.values()):
        table = dict(raw.get("mail", {}))
        table.update({k: v for k, v in mail.items() if v is not None})
        raw["mail"] = table
    for spec in flags.get("devices") or ():
        name, sep, checks = spec.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f'--device: expected NAME="SCHEDULE", got {spec!r}')
        _set_device(raw, {"name": name.strip(), "checks": checks.strip()})
    if flags.get("collector"):
        _set_device(raw, {"name": "popkeep", "collector": True})


def _set_device(raw: dict[str, Any], device: dict[str, Any]) -> None:
    devices = list(raw.get("device", []))
    for k, existing in enumerate(devices):
        if isinstance(existing, dict) and existing.get("name") == device["name"]:
            devices[k] = {**existing, **device}
            break
    else:
        devices.append(device)
    raw["device"] = devices


def apply_history(raw: dict[str, Any], history: list[HistoryRecord]) -> None:
    """Replace the mail model by the one measured from ``history``."""
    measured = measure(history)
    mail = measured.mail
    raw["mail"] = {"per_day": mail.per_day, "mean_size": mail.mean_size,
                   "size_sigma": mail.size_sigma}  # fmt: skip
    raw.pop("messages", None)
    raw["initial_usage"] = measured.server_usage
    log.info("measured %.1f messages/day over %.0f days", mail.per_day, measured.days)


def read_history(path: Path | None, account: str | None) -> list[HistoryRecord]:
    """Every delivered message's (first_retrieved_at, size, on server), read from the
    state store at ``path`` (or the configured one, see the module docstring)."""
    from popkeep import app

    store = app.open_store_at(path, read_only=True) if path else _configured_store()
    try:
        return [HistoryRecord(*record) for record in store.delivered_history(account)]
    finally:
        store.close()


def _configured_store() -> StateStore:
    """The store of the config ``-c`` or ``$POPKEEP_CONFIG`` names (which must load),
    else of the default config if there is one, else the default database."""
    from popkeep import app
    from popkeep.config.load import default_config_path, default_state_path, load_config

    config_path = resolve_config_path(None)
    unnamed = {k: v for k, v in os.environ.items() if k != "POPKEEP_CONFIG"}
    if config_path == default_config_path(unnamed) and not config_path.exists():
        return app.open_store_at(default_state_path(os.environ), read_only=True)
    return app.open_store(load_config(config_path), read_only=True)

"""``popkeep check-now``, and what ``popkeep status`` adds when a service runs.

Finds the running ``popkeep serve`` through its ``service.json``
(:mod:`popkeep.service.control`) and asks its status API; renders the answer.
Must not: import the web stack (these commands run without the ``serve`` extra).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from popkeep.cli import complete, runner
from popkeep.cli.common import config_option, handles_errors, log_options, resolve_config_path
from popkeep.cli.render import size_text
from popkeep.errors import ServiceUnavailable
from popkeep.service import control

log = logging.getLogger(__name__)

#: How long ``popkeep status`` waits for the service before it reads the store alone.
STATUS_TIMEOUT = 2.0


def service_status(state_dir: Path) -> dict[str, Any] | None:
    """The running service's status document, or None (no service, or it did not
    answer in :data:`STATUS_TIMEOUT`: then a line on stderr says so)."""
    handle = control.read_handle(state_dir)
    if handle is None:
        return None
    try:
        return control.fetch_status(handle, timeout=STATUS_TIMEOUT)
    except ServiceUnavailable as exc:
        click.echo(f"popkeep: {exc}; showing the state database only", err=True)
        return None


def _when(text: str | None, utc: bool) -> str:
    """An ISO 8601 time from the API for people: "2026-12-04 16:18 JST" (local) or
    "2026-12-04 07:18 UTC" (``utc``), as ``popkeep status`` shows times."""
    if text is None:
        return "-"
    shown = datetime.fromisoformat(text).astimezone(UTC if utc else None)
    return shown.strftime("%Y-%m-%d %H:%M ") + ("UTC" if utc else shown.strftime("%Z"))


_PHASES = {
    "waiting": "waiting", "polling": "polling now", "backing_off": "backing off",
    "held": "held until the config changes or popkeep check-now",
    "server_delay": "the server asked to wait",
}


def service_lines(account: dict[str, Any], utc: bool = False) -> list[str]:
    """What the service says about one account, as indented lines under its status line."""
    phase = _PHASES.get(account["phase"], account["phase"])
    line = f"  service: {phase}"
    if account["next_poll_at"] is not None:
        line += f", next poll {_when(account['next_poll_at'], utc)}"
    lines = [line]
    if account["error_streak"]:
        lines.append(f"  failing since {_when(account['failing_since'], utc)} "
                     f"({account['error_streak']} failed polls)")
    server = account["server"]
    if server["quota_octets"] and server["octets"] is not None:
        lines.append(f"  server: {size_text(server['octets'])} of "
                     f"{size_text(server['quota_octets'])} ({server['usage']:.0%})")
    upcoming = account["upcoming_deletions"]
    if upcoming["count"]:
        due = ("at the next poll" if upcoming["due_now"]
               else _when(upcoming["next_due_at"], utc))
        lines.append(f"  upcoming deletions: {upcoming['count']} "
                     f"({size_text(upcoming['octets'])}), the first {due}")
    return lines


@click.command("check-now")
@click.argument("accounts", nargs=-1, shell_complete=complete.accounts)
@config_option
@log_options
@handles_errors
def check_now(accounts: Sequence[str], config_path: Path | None) -> int:
    """Ask the running popkeep serve to poll all (or the named) ACCOUNTS at once."""
    app = runner.load(resolve_config_path(config_path), quiet=True)
    try:
        app.accounts(accounts)  # an unknown name is a ConfigError before any request
        state_dir = app.state_dir
    finally:
        app.close()
    handle = control.read_handle(state_dir)
    if handle is None:
        raise ServiceUnavailable(f"popkeep serve is not running (no live {control.FILE_NAME} "
                                 f"in {state_dir})")
    polling = control.check_now(handle, list(accounts))
    click.echo(f"polling now: {', '.join(polling)}" if polling else "nothing to poll")
    return 0


__all__ = ["check_now", "service_lines", "service_status"]

"""``popkeep fetch``, ``check``, ``status`` and ``schedule``.

Human output is one line per account; ``--json`` shapes are documented in
docs/cli.md and are stable: keys are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from popkeep.cli.common import (
    config_option,
    handles_errors,
    is_terminal,
    json_option,
    resolve_config_path,
    run_async,
)
from popkeep.cli.render import (
    fetch_line,
    result_json,
    schedule_json,
    schedule_lines,
    status_json,
    status_lines,
)
from popkeep.errors import PopkeepError


def _app(config_path: Path | None) -> Any:
    from popkeep.app import load_app

    app = load_app(resolve_config_path(config_path))
    for warning in app.config.warnings:
        click.echo(f"popkeep: warning: {warning}", err=True)
    return app


class _Progress:
    """A progress bar per account on a terminal (stderr), redrawn in place."""

    WIDTH = 30

    def __init__(self) -> None:
        self._shown = False

    def __call__(self, account: str, done: int, total: int, octets: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        line = f"\r{account}: [{bar}] {done}/{total} messages, {octets / 1e6:.1f} MB "
        click.echo(line, nl=False, err=True)
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            click.echo("\r" + " " * 79 + "\r", nl=False, err=True)


@click.command()
@click.argument("accounts", nargs=-1)
@config_option
@json_option
@handles_errors
def fetch(accounts: Sequence[str], config_path: Path | None, as_json: bool) -> int:
    """Fetch new mail of all (or the named) ACCOUNTS, deliver it, apply retention."""
    app = _app(config_path)
    progress = _Progress() if is_terminal() and not as_json else None
    try:
        results = run_async(app.fetch(accounts, progress))
    finally:
        if progress is not None:
            progress.clear()
        app.close()
    if as_json:
        click.echo(json.dumps({"accounts": [result_json(r) for r in results]}, indent=2))
    else:
        for result in results:
            line = fetch_line(result)
            click.echo(line, err=result.error is not None)
            for warning in result.warnings:
                click.echo(f"  warning: {warning}", err=True)
    errors: list[PopkeepError] = [r.error for r in results if r.error is not None]
    if not errors:
        return 0
    # The most actionable code wins: a config/auth problem over a passing outage.
    worst = min(errors, key=lambda e: e.retry)
    return worst.exit_code


@click.command()
@click.argument("account")
@config_option
@handles_errors
def check(account: str, config_path: Path | None) -> int:
    """Connect and authenticate only: TLS, capabilities, message count and size."""
    app = _app(config_path)
    try:
        session, stat = run_async(app.check(account))
    finally:
        app.close()
    tls = session.tls
    if tls is None:
        click.echo(f"{account}: connected WITHOUT TLS (tls = \"none\")")
    else:
        click.echo(f"{account}: {tls.version} {tls.cipher}")
        click.echo(f"  certificate: {tls.subject} (issuer {tls.issuer})")
        click.echo(f"  sha256: {tls.fingerprint_sha256}")
    capa = " ".join(sorted(session.capabilities)) or "(no CAPA)"
    click.echo(f"  capabilities: {capa}")
    click.echo(f"  mailbox: {stat.count} messages, {stat.octets} octets")
    return 0


@click.command()
@click.argument("sink")
@config_option
@handles_errors
def auth(sink: str, config_path: Path | None) -> int:
    """Authorize a Gmail API SINK (opens a browser; stores the token with mode 0600)."""
    app = _app(config_path)
    try:
        token = app.authorize(sink)
    finally:
        app.close()
    click.echo(f"{sink}: authorized; token stored in {token}")
    return 0


@click.command()
@config_option
@json_option
@handles_errors
def status(config_path: Path | None, as_json: bool) -> int:
    """Per account: last run, delivered, on server, gone, bytes on server."""
    app = _app(config_path)
    try:
        rows = app.status()
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(status_json(rows), indent=2))
    else:
        for line in status_lines(rows):
            click.echo(line)
    return 0


@click.command()
@config_option
@json_option
@handles_errors
def schedule(config_path: Path | None, as_json: bool) -> int:
    """The deletions retention will make, per account and date, before they happen."""
    app = _app(config_path)
    try:
        planned = app.schedule()
        now = app.clock.now()
    finally:
        app.close()
    if as_json:
        click.echo(json.dumps(schedule_json(planned), indent=2))
    else:
        for line in schedule_lines(planned, now):
            click.echo(line)
    return 0


__all__ = ["auth", "check", "fetch", "schedule", "status"]

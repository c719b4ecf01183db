"""``popkeep fetch``, ``check``, ``status`` and ``schedule``.

Human output is one line per account; ``--json`` shapes are documented in
docs/cli.md and are stable: keys are only ever added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from popkeep.cli import complete, runner
from popkeep.cli.common import (
    config_option,
    handles_errors,
    json_option,
    log_options,
    quiet,
    resolve_config_path,
    run_async,
)
from popkeep.cli.render import (
    account_status_lines,
    schedule_json,
    schedule_lines,
    status_json,
)
from popkeep.errors import CertificateUntrusted

if TYPE_CHECKING:
    from popkeep.transport.base import TLSInfo


def utc_option(func: Any) -> Any:
    return click.option(
        "--utc", is_flag=True,
        help="Times and days in UTC, not the local time zone (--json is always UTC).",
    )(func)


def _app(config_path: Path | None) -> Any:
    return runner.load(resolve_config_path(config_path))


@click.command()
@click.argument("accounts", nargs=-1, shell_complete=complete.accounts)
@config_option
@log_options
@json_option
def fetch(accounts: Sequence[str], config_path: Path | None, as_json: bool) -> int:
    """Fetch new mail of all (or the named) ACCOUNTS, deliver it, apply retention."""
    # The same function runs the cron edge (popkeep.cli.quick), so both behave alike.
    return runner.fetch(accounts, resolve_config_path(config_path), as_json, quiet())


@click.command()
@click.argument("account", shell_complete=complete.accounts)
@config_option
@log_options
@handles_errors
def check(account: str, config_path: Path | None) -> int:
    """Connect and authenticate only: TLS, capabilities, message count and size."""
    app = _app(config_path)
    try:
        try:
            session, stat = run_async(app.check(account))
        except CertificateUntrusted:
            _show_untrusted(account, run_async(app.certificate(account)))
            raise
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
    click.echo(f"  mailbox: {stat.messages} messages, {stat.octets} octets")
    return 0


def _show_untrusted(account: str, tls: TLSInfo) -> None:
    """The certificate that did not verify, and the config line that would pin it
    (config accepts ``sha256:`` and 64 hex digits; transport/tcp.py checks the pin)."""
    click.echo(f"{account}: the server's certificate is NOT trusted")
    click.echo(f"  sha256: {tls.fingerprint_sha256}")
    click.echo("  if this is your server's certificate, pin it in this account's section:")
    click.echo(f'  tls_fingerprint = "sha256:{tls.fingerprint_sha256}"')


@click.command()
@config_option
@log_options
@json_option
@handles_errors
@utc_option
def status(config_path: Path | None, as_json: bool, utc: bool) -> int:
    """Per account: last run, delivered, on server, gone, bytes on server; with a
    running popkeep serve, also its state (next poll, failures, quota, deletions)."""
    from popkeep.cli.service import service_lines, service_status

    app = _app(config_path)
    try:
        rows = app.status()
        state_dir = app.state_dir
    finally:
        app.close()
    service = service_status(state_dir)
    if as_json:
        data = status_json(rows)
        data["service"] = service
        click.echo(json.dumps(data, indent=2))
        return 0
    by_name = {a["account"]: a for a in (service or {}).get("accounts", [])}
    for row in rows:
        lines = account_status_lines(row, utc)
        if row.account in by_name:
            lines += service_lines(by_name[row.account], utc)
        for line in lines:
            click.echo(line)
    return 0


@click.command()
@config_option
@log_options
@json_option
@handles_errors
@utc_option
def schedule(config_path: Path | None, as_json: bool, utc: bool) -> int:
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
        for line in schedule_lines(planned, now, utc):
            click.echo(line)
    return 0


__all__ = ["check", "fetch", "schedule", "status"]

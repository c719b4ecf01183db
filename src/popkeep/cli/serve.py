"""``popkeep serve``: the always-on collector (issue 17; docs/running.md)."""

from __future__ import annotations

from pathlib import Path

import click

from popkeep.cli import runner
from popkeep.cli.common import config_option, handles_errors, log_options, resolve_config_path


@click.command()
@config_option
@log_options
@handles_errors
def serve(config_path: Path | None) -> int:
    """Poll every account on its own interval until stopped (SIGTERM or SIGINT).

    Failed polls back off; a refused password stops polling that account until its
    configuration changes or `popkeep check-now ACCOUNT`. SIGHUP reloads the config.
    """
    import asyncio

    from popkeep.service.run import serve as run_service

    path = resolve_config_path(config_path)
    app = runner.load(path)
    try:
        # the alerts (docs/alerts.md) hear of every pass
        asyncio.run(run_service(app, path, observers=[app.alerts()]))
    finally:
        app.close()
    return 0


@click.command("install-service")
@config_option
@click.option("--system", is_flag=True,
              help="A unit for the system manager, run as a service account (see --user).")
@click.option("--user", "run_as", default="popkeep", show_default=True,
              help="The account the system unit runs as (with --system).")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the unit here (default: ~/.config/systemd/user, or "
                   "/etc/systemd/system with --system).")
@click.option("--print", "to_stdout", is_flag=True, help="Print the unit instead of writing it.")
@click.option("--force", is_flag=True, help="Replace a unit that is already there.")
@log_options
@handles_errors
def install_service(
    config_path: Path | None, system: bool, run_as: str, unit_dir: Path | None,
    to_stdout: bool, force: bool,
) -> int:
    """Write a systemd unit that runs `popkeep serve` with this config, sandboxed."""
    import os
    import sys

    from popkeep.config.load import default_state_path
    from popkeep.errors import CannotCreate
    from popkeep.service.unit import UNIT_NAME, unit_text, writable_paths

    path = resolve_config_path(config_path).expanduser().resolve()
    app = runner.load(path)  # the config must be valid before a unit runs it
    app.close()
    config = app.config
    state = config.state.path or default_state_path(os.environ)
    text = unit_text([sys.executable, "-m", "popkeep", "-c", str(path), "serve"],
                     writable_paths(config, state), system=system,
                     user=run_as if system else None)  # fmt: skip
    if to_stdout:
        click.echo(text, nl=False)
        return 0
    if unit_dir is None:
        home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        unit_dir = Path("/etc/systemd/system") if system else home / "systemd" / "user"
    target = unit_dir / UNIT_NAME
    if target.exists() and not force and target.read_text(encoding="utf-8") != text:
        raise CannotCreate(f"{target} exists and differs; add --force to replace it")
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CannotCreate(f"{target}: {exc.strerror or exc}") from None
    scope = "" if system else " --user"
    click.echo(f"wrote {target}")
    click.echo(f"start it now and at every boot: systemctl{scope} daemon-reload && "
               f"systemctl{scope} enable --now {UNIT_NAME}")
    if not system:
        click.echo("to keep it running while you are logged out: loginctl enable-linger")
    return 0

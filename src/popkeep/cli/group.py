"""The click group behind every command line the cron edge does not run (see :mod:`.quick`)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from popkeep import __version__
from popkeep.cli.common import gather_log_option, log_options, log_settings

# command name -> "module:attribute" of its click.Command, imported on first use.
_COMMANDS = {
    "auth": "popkeep.cli.auth:auth",
    "baseline": "popkeep.cli.migrate:baseline",
    "check": "popkeep.cli.commands:check",
    "check-now": "popkeep.cli.service:check_now",
    "demo": "popkeep.cli.demo:demo",
    "fetch": "popkeep.cli.commands:fetch",
    "import-state": "popkeep.cli.migrate:import_state",
    "init": "popkeep.cli.init:init",
    "install-service": "popkeep.cli.serve:install_service",
    "plan": "popkeep.cli.plan:plan",
    "retry": "popkeep.cli.retry:retry",
    "schedule": "popkeep.cli.commands:schedule",
    "set-password": "popkeep.cli.secrets:set_password",
    "serve": "popkeep.cli.serve:serve",
    "status": "popkeep.cli.commands:status",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when invoked or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="popkeep")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $POPKEEP_CONFIG or ~/.config/popkeep/config.toml).",
)
@click.option(
    "--log-file", type=click.Path(dir_okay=False), default=None, expose_value=False,
    callback=gather_log_option, help="Append log lines to FILE instead of writing them to stderr.",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default=None, expose_value=False,
    callback=gather_log_option, help="Log lines as text, or one JSON object per line.",
)
@log_options
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Collect mail from POP3 mailboxes into one central mailbox, safely."""
    ctx.obj = {"config_path": config_path}
    log_settings(ctx).apply()


def click_main(argv: list[str] | None) -> int:
    """Run ``argv`` through click; returns the exit code."""
    try:
        result: Any = cli.main(args=argv, prog_name="popkeep", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    return result if isinstance(result, int) else 0

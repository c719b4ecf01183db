"""What every subcommand shares: the ``-c CONFIG`` option, logging, turning errors into exits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from popkeep.cli.runner import default_config, error_line, is_terminal, run_async, setup_logging
from popkeep.errors import PopkeepError

__all__ = [
    "config_option", "fail", "handles_errors", "is_terminal", "json_option", "log_options",
    "log_settings", "quiet", "resolve_config_path", "run_async", "setup_logging",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def config_option(func: F) -> F:
    """``-c/--config FILE`` on a subcommand (the group accepts it too)."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default: $POPKEEP_CONFIG or ~/.config/popkeep/config.toml).",
    )(func)


class LogSettings:
    """``-v``/``-q``/``--log-file`` gathered from both sides of the command name."""

    def __init__(self) -> None:
        self.verbose = 0
        self.quiet = False
        self.log_file: str | None = None
        self.log_format = "text"

    def apply(self) -> None:
        try:
            setup_logging(self.verbose, self.quiet, self.log_file, self.log_format)
        except PopkeepError as exc:
            raise fail(exc) from None


def log_settings(ctx: click.Context | None = None) -> LogSettings:
    """This command line's settings (``ctx.meta`` is shared by the group and its command)."""
    ctx = ctx or click.get_current_context()
    settings = ctx.meta.get("popkeep.log")
    if not isinstance(settings, LogSettings):
        settings = ctx.meta["popkeep.log"] = LogSettings()
    return settings


def quiet() -> bool:
    """Whether ``-q`` was given (before or after the command name)."""
    return log_settings().quiet


def gather_log_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Add one given option to the command line's LogSettings; re-apply after the
    command name (the group applied what came before it)."""
    settings = log_settings(ctx)
    if param.name == "verbose":
        settings.verbose += value
    elif param.name == "quiet":
        settings.quiet = settings.quiet or value
    elif param.name == "log_file":
        settings.log_file = value
    elif param.name == "log_format" and value:
        settings.log_format = value
    if ctx.parent is not None and value:
        settings.apply()
    return value


def log_options(func: F) -> F:
    """``-v/--verbose`` (count) and ``-q/--quiet`` on the group and on every command."""
    func = click.option(
        "-q", "--quiet", is_flag=True, expose_value=False, callback=gather_log_option,
        help="Print nothing unless new mail arrived or something failed (for cron).",
    )(func)
    return click.option(
        "-v", "--verbose", count=True, expose_value=False, callback=gather_log_option,
        help="More log output (-vv for debug).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(func)


def resolve_config_path(given: Path | None) -> Path:
    """Subcommand option, else the group's, else $POPKEEP_CONFIG, else the XDG default."""
    if given is not None:
        return given
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if isinstance(ctx.obj, dict) and ctx.obj.get("config_path") is not None:
            return Path(ctx.obj["config_path"])
        ctx = ctx.parent
    return default_config()


def fail(error: PopkeepError, prefix: str = "") -> click.exceptions.Exit:
    """Print the one-line reason (and hint) to stderr; return the Exit to raise."""
    click.echo(error_line(error, prefix), err=True)
    return click.exceptions.Exit(error.exit_code)


def handles_errors(func: F) -> F:
    """Turn a PopkeepError escaping a command into its one-line message and exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PopkeepError as exc:
            raise fail(exc) from None

    return wrapper  # type: ignore[return-value]

"""What every subcommand shares: the ``-c CONFIG`` option, logging, turning errors into exits."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from popkeep.errors import PopkeepError

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
    from popkeep.config.load import default_config_path

    return default_config_path(os.environ)


def setup_logging(verbose: int) -> None:
    from popkeep.app import install_masking

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    install_masking()


def fail(error: PopkeepError, prefix: str = "") -> click.exceptions.Exit:
    """Print the one-line reason (and hint) to stderr; return the Exit to raise."""
    hint = f" ({error.hint})" if error.hint else ""
    click.echo(f"popkeep: {prefix}{error}{hint}", err=True)
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


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def is_terminal() -> bool:
    return sys.stdout.isatty()

"""``popkeep auth NAME``: sign in once for an account or a sink that uses OAuth 2.0.

Which flow: ``--device`` shows a code to enter on any device (Microsoft; for
machines without a browser), ``--browser`` opens a browser here. Without either,
a browser when this machine seems to have a display, else the device code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import click

from popkeep.cli import complete, runner
from popkeep.cli.common import config_option, handles_errors, log_options, resolve_config_path


def has_display(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a browser can open here: macOS and Windows, or X11 / Wayland."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


@click.command()
@click.argument("name", shell_complete=complete.accounts_and_sinks)
@click.option("--device", "flow", flag_value="device",
              help="Show a code to enter at the provider's page on any device.")
@click.option("--browser", "flow", flag_value="browser",
              help="Open a browser on this machine (it redirects back to localhost).")
@config_option
@log_options
@handles_errors
def auth(name: str, flow: str | None, config_path: Path | None) -> int:
    """Sign in for account or sink NAME (OAuth 2.0) and store its tokens.

    Accounts and IMAP sinks with auth = "oauth2" and an oauth table; Gmail API
    sinks (a browser, their token_file). Run it again when popkeep says the sign-in
    was refused or expired.
    """
    chosen: Literal["browser", "device"] = (
        "browser" if flow == "browser" or (flow is None and has_display()) else "device")
    app = runner.load(resolve_config_path(config_path))
    try:
        done = app.authorize(name, chosen, click.echo)
    finally:
        app.close()
    click.echo(f"{name}: signed in ({chosen}); {done}")
    return 0

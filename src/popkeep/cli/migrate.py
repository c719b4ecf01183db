"""``popkeep import-state`` and ``popkeep baseline``: no second download after a switch.

``import-state`` reads the state file of getmail6, mpop, fetchmail or Thunderbird (the unique-ids
that client collected, :mod:`popkeep.state.foreign`) and marks those messages as
collected for one account, so ``popkeep fetch`` does not fetch them again; their
retention clock starts when the file says the client first retrieved them (getmail6,
Thunderbird), else now. ``baseline`` marks whatever the server holds now as
collected (the old client has it all), its retention clock starting now.
"""

from __future__ import annotations

from pathlib import Path

import click

from popkeep.cli import runner
from popkeep.cli.common import config_option, handles_errors, resolve_config_path
from popkeep.state.foreign import READERS


@click.command("import-state")
@click.argument("client", type=click.Choice(sorted(READERS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--account", required=True, help="The account the file's messages belong to.")
@click.option("--host", default=None, help="The server the file names (default: the account's).")
@click.option("--user", default=None, help="The user the file names (default: the account's).")
@config_option
@handles_errors
def import_state(
    client: str, file: Path, account: str, host: str | None, user: str | None,
    config_path: Path | None,
) -> int:
    """Mark the messages CLIENT already collected (its state FILE) as collected for --account."""
    app = runner.load(resolve_config_path(config_path))
    try:
        marked, listed = app.import_state(account, client, file.read_bytes(), host, user)
    finally:
        app.close()
    known = listed - marked
    click.echo(
        f"{account}: {marked} message(s) marked as collected from {client}'s list"
        + (f" ({known} already known)" if known else "")
        + "; popkeep fetch will not fetch them"
    )
    return 0


@click.command()
@click.argument("account")
@config_option
@handles_errors
def baseline(account: str, config_path: Path | None) -> int:
    """Mark everything on ACCOUNT's server now as collected: nothing is delivered,
    and popkeep fetch afterwards delivers only newer mail."""
    app = runner.load(resolve_config_path(config_path))
    try:
        marked, listed = app.baseline(account)
    finally:
        app.close()
    known = listed - marked
    click.echo(
        f"{account}: {marked} message(s) on the server marked as collected"
        + (f" ({known} already known)" if known else "")
        + "; popkeep fetch will deliver only newer mail"
    )
    return 0

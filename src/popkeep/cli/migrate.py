"""``popkeep import-state`` and ``popkeep baseline``: no second download after a switch.

``import-state`` reads the state file of getmail6, mpop, fetchmail or Thunderbird (the unique-ids
that client collected, :mod:`popkeep.state.foreign`) and marks those messages as
collected for one account, so ``popkeep fetch`` does not fetch them again; their
retention clock starts when the file says the client first retrieved them (getmail6,
Thunderbird), else now. ``baseline`` marks whatever the server holds now as
collected (the old client has it all), its retention clock starting now.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from popkeep.cli import complete, runner
from popkeep.cli.common import config_option, handles_errors, resolve_config_path
from popkeep.state.foreign import READERS

if TYPE_CHECKING:
    from popkeep.app import App


def _marked(
    path: Path, account: str, mark: Callable[[App], tuple[int, int]], done: str, then: str,
    quiet: bool = False,
) -> None:
    """Run ``mark`` (an App call returning how many messages it marked and how many
    it was given) on the app of config ``path``, and say in one line what it did
    (``done``) and what follows (``then``)."""
    app = runner.load(path, quiet)
    try:
        marked, listed = mark(app)
    finally:
        app.close()
    known = listed - marked
    click.echo(f"{account}: {marked} message(s) {done}"
               + (f" ({known} already known)" if known else "") + f"; {then}")


def mark_baseline(path: Path, account: str, quiet: bool = False) -> None:
    """``popkeep baseline ACCOUNT`` with config ``path`` (also offered by ``popkeep
    init``)."""
    _marked(path, account, lambda app: app.baseline(account),
            "on the server marked as collected", "popkeep fetch will deliver only newer mail",
            quiet)


@click.command("import-state")
@click.argument("client", type=click.Choice(sorted(READERS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--account", required=True, shell_complete=complete.accounts,
              help="The account the file's messages belong to.")
@click.option("--host", default=None, help="The server the file names (default: the account's).")
@click.option("--user", default=None, help="The user the file names (default: the account's).")
@config_option
@handles_errors
def import_state(
    client: str, file: Path, account: str, host: str | None, user: str | None,
    config_path: Path | None,
) -> int:
    """Mark the messages CLIENT already collected (its state FILE) as collected for --account."""
    _marked(
        resolve_config_path(config_path), account,
        lambda app: app.import_state(account, client, file.read_bytes(), host, user),
        f"marked as collected from {client}'s list", "popkeep fetch will not fetch them",
    )
    return 0


@click.command()
@click.argument("account", shell_complete=complete.accounts)
@config_option
@handles_errors
def baseline(account: str, config_path: Path | None) -> int:
    """Mark everything on ACCOUNT's server now as collected: nothing is delivered,
    and popkeep fetch afterwards delivers only newer mail."""
    mark_baseline(resolve_config_path(config_path), account)
    return 0

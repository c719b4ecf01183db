"""``popkeep retry``: offer messages a sink refused for good to the sinks again.

A sink that refuses one message (too big for the provider, unparsable) makes
popkeep remember it and skip it, with a warning, on every later fetch. Once the
cause is fixed (a larger limit, another sink), this forgets the refusals of an
account (or of the named UIDs) so the next ``popkeep fetch`` tries them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from popkeep.cli import complete, runner
from popkeep.cli.common import config_option, handles_errors, resolve_config_path


@click.command()
@click.argument("account", shell_complete=complete.accounts)
@click.argument("uids", nargs=-1)
@config_option
@handles_errors
def retry(account: str, uids: Sequence[str], config_path: Path | None) -> int:
    """Let the next fetch try again the messages of ACCOUNT a sink refused (all, or UIDS)."""
    app = runner.load(resolve_config_path(config_path))
    try:
        forgotten = app.retry_refused(account, tuple(uids))
    finally:
        app.close()
    if not forgotten:
        click.echo(f"{account}: no refused messages remembered")
        return 0
    for refusal in forgotten:
        click.echo(f"{account}: message {refusal.uid}: sink {refusal.sink} will be tried again")
    return 0

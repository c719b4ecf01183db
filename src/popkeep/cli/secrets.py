"""``popkeep set-password NAME``: store an account's or sink's password in the keyring.

The config names the entry (``password = { keyring = "popkeep/isp" }``); this
prompts for the password twice without echo and stores it there, so it is
never written into a file or onto a command line.
"""

from __future__ import annotations

from pathlib import Path

import click

from popkeep.cli import complete, runner
from popkeep.cli.common import config_option, handles_errors, resolve_config_path
from popkeep.config import keystore
from popkeep.config.schema import Config, Connection
from popkeep.errors import ConfigError


def keyring_entry(config: Config, name: str) -> str:
    """The keyring entry account or sink ``name`` reads its password from."""
    record = config.accounts.get(name) or config.sinks.get(name)
    if record is None:
        known = ", ".join([*config.accounts, *config.sinks]) or "none"
        raise ConfigError(f"no account or sink named {name!r} (configured: {known})")
    server = getattr(record, "server", None)
    secret = server.secret if isinstance(server, Connection) else None
    if secret is None or secret.kind != "keyring":
        raise ConfigError(
            f'{name!r} does not take its password from the keyring; write '
            f'password = {{ keyring = "popkeep/{name}" }} in its table first'
        )
    return secret.value


@click.command("set-password")
@click.argument("name", shell_complete=complete.accounts_and_sinks)
@config_option
@handles_errors
def set_password(name: str, config_path: Path | None) -> int:
    """Prompt for the password of account or sink NAME and store it in the keyring."""
    app = runner.load(resolve_config_path(config_path))
    try:
        entry = keyring_entry(app.config, name)
    finally:
        app.close()
    secret = click.prompt(f"Password for {name}", hide_input=True,
                          confirmation_prompt="Repeat it", err=True)
    keystore.set_password(entry, secret)
    click.echo(f'{name}: password stored in the keyring as "{entry}"')
    return 0

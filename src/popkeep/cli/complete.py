"""Shell completion of the account and sink names a command line takes.

Owns: the ``shell_complete`` callbacks of arguments such as ``fetch [ACCOUNT…]``
and ``auth NAME`` (docs/cli.md, "Shell completion"): the ``name`` of each
``[[account]]`` (and, where a sink is meant too, ``[[sink]]``) table of the config
file the command line would read (``-c`` on either side of the command, else
``$POPKEEP_CONFIG``, else the XDG default).

Must not: validate the config, run anything it names, print, or raise. The TOML
is read as data only, so a config with a mistake elsewhere still completes and a
missing or unreadable one completes nothing; the command itself reports errors.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from popkeep.cli.runner import default_config

if TYPE_CHECKING:  # imported when a shell asks: every other command line skips the module
    from click.shell_completion import CompletionItem

Completer = Callable[[click.Context, click.Parameter, str], list["CompletionItem"]]


def _config_path(ctx: click.Context) -> Path:
    """The command's ``-c``, else the group's, else the default (as the command would)."""
    node: click.Context | None = ctx
    while node is not None:
        given = node.params.get("config_path")
        if given:
            return Path(given).expanduser()  # a word being completed is not expanded yet
        node = node.parent
    return default_config()


def names(path: Path, tables: Iterable[str]) -> list[str]:
    """The ``name`` of every table of the arrays ``tables`` in the TOML file at
    ``path``, in file order; empty when the file cannot be read as TOML."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return []
    found: list[str] = []
    for key in tables:
        entries = data.get(key)
        for entry in entries if isinstance(entries, list) else []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name not in found:
                found.append(name)
    return found


def _completer(*tables: str) -> Completer:
    def complete(
        ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem

        given = ctx.params.get(param.name or "")
        taken = set(given) if isinstance(given, tuple) else set()  # nargs=-1: not twice
        return [CompletionItem(name) for name in names(_config_path(ctx), tables)
                if name.startswith(incomplete) and name not in taken]

    return complete


#: An account's name (``fetch``, ``check``, ``check-now``, ``retry``, ``baseline`` …).
accounts = _completer("account")
#: An account's or a sink's name (``auth``, ``set-password``).
accounts_and_sinks = _completer("account", "sink")

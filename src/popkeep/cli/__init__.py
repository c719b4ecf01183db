"""The ``popkeep`` command line.

Owns: argument parsing, rendering results for people (and ``--json`` for scripts),
exit codes. Must not: name concrete sources/sinks/stores (``app`` does), or hold
policy. ``popkeep --version`` and plain ``popkeep fetch`` command lines run
without click, at the cron edge (:mod:`.quick`); everything else goes to the
click group in :mod:`.group`, whose subcommands live in sibling modules,
imported lazily.
"""

from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (``argv`` None: popkeep is the program)."""
    from popkeep.cli.quick import run

    args = sys.argv[1:] if argv is None else list(argv)
    code = run(args, as_program=argv is None)
    if code is not None:
        return code
    from popkeep.cli.group import click_main

    return click_main(args)


def __getattr__(name: str) -> Any:
    """``popkeep.cli.cli``: the click group, imported on first use."""
    if name == "cli":
        from popkeep.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""A strict, click-free recogniser of the command lines cron runs.

Recognises ``popkeep --version`` and ``popkeep [-c FILE] [--log-file FILE] [-v…|-q]
fetch [-c FILE] [--json] [-v…|-q] [ACCOUNT…]`` word for word and runs them with
:func:`popkeep.cli.runner.fetch`, the function the click command calls too;
anything else (``--help``, a typo, another command) goes to click, which explains it.

Why: click and what it imports cost ≈ 20–30 ms of CPU per start on a small
machine, a sixth of a whole no-op poll (bench/README.md, "Where the time goes").
Must not: import click, or anything that only other commands need.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from popkeep import __version__
from popkeep.cli.runner import default_config, error_line, fetch, say, setup_logging
from popkeep.errors import PopkeepError


class FastFetch(NamedTuple):
    """A ``fetch`` command line the fast path can run exactly as click would."""

    config: str | None
    verbose: int
    accounts: tuple[str, ...]
    as_json: bool
    quiet: bool = False
    log_file: str | None = None


def _config_value(args: list[str], i: int) -> tuple[str, int] | None:
    """``-c FILE`` / ``--config FILE`` / ``--config=FILE`` at ``args[i]``: (FILE, next i)."""
    arg = args[i]
    if arg in ("-c", "--config") and i + 1 < len(args):
        return args[i + 1], i + 2
    if arg.startswith("--config="):
        return arg.removeprefix("--config="), i + 1
    return None


def _log_file_value(args: list[str], i: int) -> tuple[str, int] | None:
    """``--log-file FILE`` / ``--log-file=FILE`` at ``args[i]``: (FILE, next i)."""
    arg = args[i]
    if arg == "--log-file" and i + 1 < len(args):
        return args[i + 1], i + 2
    if arg.startswith("--log-file="):
        return arg.removeprefix("--log-file="), i + 1
    return None


def _usable_path(path: str | None) -> bool:
    """Not empty, not a directory: click's message for those is the better one."""
    return path is None or (bool(path) and not os.path.isdir(path))


def _verbosity(arg: str) -> int:
    """How much ``-v``, ``-vv``… or ``--verbose`` adds; 0 for anything else."""
    if arg == "--verbose":
        return 1
    return len(arg) - 1 if len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"} else 0


def parse_fast(argv: Sequence[str]) -> FastFetch | str | None:
    """``"version"``, a :class:`FastFetch`, or None: "let click parse this".

    Recognises only what click would read the same way: group options ``-c FILE``,
    ``--config FILE``, ``--config=FILE``, ``--log-file FILE``, ``--log-file=FILE``;
    then ``fetch`` with ``-c``/``--config`` (which wins over the group's) and
    ``--json``, and account names that do not start with ``-``; ``-v``/``-vv…``/
    ``--verbose`` and ``-q``/``--quiet`` on either side of ``fetch``.
    """
    args = list(argv)
    if args == ["--version"]:
        return "version"
    configs: dict[bool, str] = {}  # in_fetch → the last config path given there
    verbose, quiet, as_json, in_fetch = 0, False, False, False
    log_file: str | None = None
    accounts: list[str] = []
    i = 0
    while i < len(args):
        arg, value = args[i], _config_value(args, i)
        if value is not None:
            configs[in_fetch], i = value
            continue
        log_value = None if in_fetch else _log_file_value(args, i)
        if log_value is not None:
            log_file, i = log_value
            continue
        if not in_fetch and arg == "fetch":
            in_fetch = True
        elif _verbosity(arg):
            verbose += _verbosity(arg)
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif in_fetch and arg == "--json":
            as_json = True
        elif in_fetch and arg and not arg.startswith("-"):
            accounts.append(arg)
        else:
            return None
        i += 1
    chosen = configs.get(True, configs.get(False))
    if not (in_fetch and _usable_path(chosen) and _usable_path(log_file)):
        return None
    return FastFetch(chosen, verbose, tuple(accounts), as_json, quiet, log_file)


def run_fast(argv: Sequence[str]) -> int | None:
    """Run ``argv`` without click when :func:`parse_fast` recognises it; else None."""
    call = parse_fast(argv)
    if call is None:
        return None
    if call == "version":
        say(f"popkeep, version {__version__}")
        return 0
    assert isinstance(call, FastFetch)
    try:
        setup_logging(call.verbose, call.quiet, call.log_file)
    except PopkeepError as exc:
        say(error_line(exc), err=True)
        return exc.exit_code
    path = Path(call.config) if call.config is not None else default_config()
    try:
        return fetch(call.accounts, path, call.as_json, call.quiet)
    except (EOFError, KeyboardInterrupt):
        say("\nAborted.", err=True)  # what click prints (and returns) for ^C
        return 130

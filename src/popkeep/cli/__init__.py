"""The ``popkeep`` command line.

Owns: argument parsing, rendering results for people (and ``--json`` for scripts),
exit codes. Must not: name concrete sources/sinks/stores (``app`` does), or hold
policy. ``popkeep --version`` and plain ``popkeep fetch`` command lines run without
click (:mod:`.runner`); everything else goes to the click group in
:mod:`.group`, whose subcommands live in sibling modules, imported lazily.
"""

from __future__ import annotations

import gc
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    if argv is None:
        # Run as the program: no cyclic collection while modules load (see
        # runner.end_startup, which turns it back on; so does the ``finally``).
        gc.disable()
    try:
        from popkeep.cli.runner import run_fast

        args = sys.argv[1:] if argv is None else list(argv)
        code = run_fast(args)
        if code is not None:
            if argv is None:
                _exit_now(code)
            return code
    finally:
        gc.enable()
    from popkeep.cli.group import click_main

    return click_main(args)


def _exit_now(code: int) -> None:
    """End the process without tearing the interpreter down.

    Only after a fast-path command run as the program itself: by then the state
    store and every sink are closed (each delivery durable), the passes' threads and
    (when a loop ran) asyncio's worker threads are joined, and only output buffers
    remain, flushed here (a Maildir's background ``syncfs`` may still run: it only
    starts writing early what the commits already made durable). Finalising the
    150–250 loaded modules would cost up to ≈ 30 ms of CPU on every cron poll
    (bench/README.md, "Where the time goes").
    """
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            code = code or 1
    os._exit(code)


def __getattr__(name: str) -> Any:
    """``popkeep.cli.cli``: the click group, imported on first use."""
    if name == "cli":
        from popkeep.cli.group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

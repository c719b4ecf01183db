"""The cron edge of the command line: what only a process that polls once and exits needs.

Every start-up trick that keeps its measured benefit for ``popkeep fetch`` run from
cron lives in this package, and nothing below the CLI imports it (a test checks):

- :mod:`.argv`: the click-free recogniser of ``popkeep --version`` and plain
  ``popkeep fetch`` command lines (click costs ≈ 20–30 ms of CPU per start);
- :func:`run`: no cyclic garbage collection while modules load, ``gc.freeze``
  once the app is loaded (:func:`end_startup`), and ``os._exit`` instead of
  tearing the interpreter down (:func:`_exit_now`);
- :mod:`.poll`: logging in while popkeep starts, and the pass driven without an
  event loop until it has work.

``App.fetch``, what a long-running service calls, pays none of them.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence


def run(args: Sequence[str], *, as_program: bool) -> int | None:
    """Run ``args`` when :mod:`.argv` recognises them (the exit code); else None.

    ``as_program`` (popkeep is the process, not a caller's library): collection is
    off until :func:`end_startup`, and a recognised command ends the process
    through :func:`_exit_now` instead of returning. Collection is on again when
    this returns, whatever happened.
    """
    if as_program:
        gc.disable()  # on again in end_startup, or below
    try:
        from popkeep.cli.quick.argv import run_fast

        code = run_fast(args)
        if code is not None and as_program:
            _exit_now(code)
        return code
    finally:
        gc.enable()


def end_startup() -> None:
    """Modules are loaded: let the cyclic garbage collector run again, without them.

    :func:`run`, as the program, disables collection while popkeep starts: loading
    ≈ 250 modules allocates objects that live until exit, and collecting again and
    again as they pile up cost ≈ 4 % of a no-op poll's CPU (bench/README.md,
    "Round 4"). ``gc.freeze`` then moves them out of every later collection. Does
    nothing when collection is on (called in-process).
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _exit_now(code: int) -> None:
    """End the process without tearing the interpreter down.

    Only after a recognised command run as the program itself: by then the state
    store and every sink are closed (each delivery durable), the passes' threads and
    (when a loop ran) asyncio's worker threads are joined, and only output buffers
    remain, flushed here (a Maildir's background ``syncfs`` may still run: it only
    starts writing early what the commits already made durable). Finalising the
    150–250 loaded modules would cost up to ≈ 30 ms of CPU on every cron poll
    (bench/README.md, "Where the time goes").
    """
    import logging
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            code = code or 1
    os._exit(code)

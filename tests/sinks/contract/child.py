"""The kill child: deliver the contract batch through one registered sink, dying on cue.

``python -m tests.sinks.contract.child NAME DIRECTORY KILL_AT`` builds the entry
``NAME`` over ``DIRECTORY``, counts calls to the entry's ``kill_points`` and
SIGKILLs itself just before call number ``KILL_AT`` (0: never). It prints the
number of boundary calls it made, which tells the suite how many kill points a
run has. Nothing is cleaned up: what a kill leaves is what recovery must handle.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.sinks.contract.registry import deliveries, entry


def _arm(points: tuple[str, ...], kill_at: int) -> list[int]:
    """Wrap every boundary so the ``kill_at``-th call kills the process first."""
    count = [0]
    for dotted in points:
        module_name, _, attribute = dotted.rpartition(".")
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)

        def counted(*args: Any, _original: Callable[..., Any] = original, **kw: Any) -> Any:
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _original(*args, **kw)

        setattr(module, attribute, functools.wraps(original)(counted))
    return count


async def _deliver(name: str, directory: Path) -> None:
    sink = entry(name).build(directory).sink()
    await sink.open()
    try:
        await sink.deliver(deliveries())
    finally:
        await sink.close()


def main(name: str, directory: str, kill_at: str) -> None:
    count = _arm(entry(name).kill_points, int(kill_at))
    asyncio.run(_deliver(name, Path(directory)))
    sys.stdout.write(f"{count[0]}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])

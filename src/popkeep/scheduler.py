"""When each account runs: today, one pass over the chosen accounts, a few at a time.

Owns: concurrency across accounts (each account is independent: its own
session, its own sinks, its own rows in the store). Must not: decide what a pass
does (``collector``) or which concrete classes serve it (``app``). One way to run
the passes, inside an event loop; ``popkeep fetch`` drives the same passes from
``cli.quick.poll``, which nothing here knows about.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded by the caller
    from popkeep.collector import AccountJob, AccountResult, Collector

DEFAULT_CONCURRENCY = 4


async def run_once(
    collector: Collector, jobs: Sequence[AccountJob], concurrency: int = DEFAULT_CONCURRENCY
) -> list[AccountResult]:
    """One pass per job, at most ``concurrency`` at a time; results in job order."""
    import asyncio

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(job: AccountJob) -> AccountResult:
        async with gate:
            return await collector.run(job)

    return list(await asyncio.gather(*(one(job) for job in jobs)))

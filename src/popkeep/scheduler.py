"""When each account runs: today, one pass over the chosen accounts, a few at a time.

Owns: concurrency across accounts (each account is independent: its own
session, its own sinks, its own rows in the store). Must not: decide what a pass
does (``collector``) or which concrete classes serve it (``app``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from popkeep.collector import AccountJob, AccountResult, Collector

DEFAULT_CONCURRENCY = 4


async def run_once(
    collector: Collector, jobs: Sequence[AccountJob], concurrency: int = DEFAULT_CONCURRENCY
) -> list[AccountResult]:
    """One pass per job, at most ``concurrency`` at a time; results in job order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(job: AccountJob) -> AccountResult:
        async with gate:
            return await collector.run(job)

    return list(await asyncio.gather(*(one(job) for job in jobs)))

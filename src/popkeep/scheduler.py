"""When each account runs: today, one pass over the chosen accounts, a few at a time.

Owns: concurrency across accounts (each account is independent: its own
session, its own sinks, its own rows in the store). Must not: decide what a pass
does (``collector``) or which concrete classes serve it (``app``).

Two ways to run the passes: :func:`run_once` inside an event loop, and
:func:`poll` from a process that has none (``popkeep fetch``): every account is
surveyed first with blocking I/O (threads, a few at a time), and only the
accounts with something to fetch or delete go on in an event loop, which a poll
with nothing new never starts (nor imports asyncio for).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # loaded by the caller, after App.poll has begun its logins
    from popkeep.collector import AccountJob, AccountResult, Collector, Surveyed

DEFAULT_CONCURRENCY = 4
T = TypeVar("T")


async def run_once(
    collector: Collector, jobs: Sequence[AccountJob], concurrency: int = DEFAULT_CONCURRENCY
) -> list[AccountResult]:
    """One pass per job, at most ``concurrency`` at a time; results in job order."""
    return await _each(jobs, collector.run, concurrency)


async def _each(
    items: Sequence[T], work: Callable[[T], Awaitable[AccountResult]], concurrency: int
) -> list[AccountResult]:
    """``work`` on every item, at most ``concurrency`` at a time; results in item order."""
    import asyncio

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> AccountResult:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


def poll(
    collector: Collector, jobs: Sequence[AccountJob], concurrency: int = DEFAULT_CONCURRENCY
) -> list[AccountResult]:
    """:func:`run_once` for a thread without an event loop; results in job order.

    The jobs' sessions must do blocking I/O while no loop runs (see
    :meth:`Collector.survey`).
    """
    from popkeep.collector import AccountResult, Surveyed

    surveys = _survey_all(collector, jobs, concurrency)
    unfinished = [s for s in surveys if isinstance(s, Surveyed)]
    if unfinished:
        import asyncio

        finished = iter(asyncio.run(_each(unfinished, collector.finish, concurrency)))
        surveys = [next(finished) if isinstance(s, Surveyed) else s for s in surveys]
    return [s for s in surveys if isinstance(s, AccountResult)]


def _survey_all(
    collector: Collector, jobs: Sequence[AccountJob], concurrency: int
) -> list[AccountResult | Surveyed]:
    """:meth:`Collector.survey` of each job; one job in this thread, more in threads."""
    if len(jobs) <= 1:
        return [collector.survey(job) for job in jobs]
    results: list[AccountResult | Surveyed | None] = [None] * len(jobs)
    failures: list[BaseException] = []
    gate = threading.Semaphore(max(1, concurrency))

    def one(index: int) -> None:
        with gate:
            try:
                results[index] = collector.survey(jobs[index])
            except BaseException as exc:  # a bug, not a PopkeepError: raised below
                failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,), name=f"popkeep-survey-{i}", daemon=True)
               for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]

"""The cron edge's account passes: what only a one-shot ``popkeep fetch`` needs.

Owns the two pass-level tricks of :mod:`popkeep.cli.quick` that keep their measured
benefit for a process that polls once and exits (bench/README.md, "Round 5",
"Round 7" and "Round 8"):

- **logging in while popkeep starts** (:class:`OpenedAhead`): once an account's lock
  is held, its login runs on a worker thread while the main thread loads the
  collector, the sinks and the state database;
- **a pass without an event loop** (:func:`poll`): each account's pass — the one
  :meth:`popkeep.collector.Collector.run` every caller runs — is driven here by
  hand. Over a TCP stream opened with no loop running, its awaits never suspend,
  so a pass with nothing to fetch or delete runs to its end and asyncio is never
  imported; a pass that has work suspends at its first real wait and is finished
  in one ``asyncio.run``, on the same session (no second login).

Must not be imported by the collector, the scheduler, the sources or the transport:
they know one pass and one way to run it (a test checks). ``App.fetch`` — what a
long-running service calls — pays neither trick.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from popkeep import logs

if TYPE_CHECKING:
    from popkeep.app import App
    from popkeep.collector import AccountResult, ProgressCallback
    from popkeep.sources.base import SessionFactory, SourceSession

T = TypeVar("T")

#: accounts whose login starts early, and passes driven at once
CONCURRENCY = 4


def drive(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to its end here and now, without an event loop.

    For coroutines that only await streams opened with no loop running (those never
    suspend). Raises RuntimeError (after closing the coroutine) if it does suspend.
    """
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    steps.close()
    raise RuntimeError("a coroutine driven without an event loop waited for one")


class _Suspended:
    """A pass that yielded to an event loop it did not have: awaited, it goes on."""

    def __init__(self, steps: Generator[Any, None, AccountResult], account: str | None) -> None:
        self._steps = steps
        self.account = account  #: whom its log lines name (popkeep.logs), set where it goes on

    def __await__(self) -> Generator[Any, None, AccountResult]:
        # It stopped at a bare ``yield`` (a checkpoint: nothing else can suspend
        # without a loop); the task resumes it from there and serves what it awaits.
        return (yield from self._steps)


def _begin(coro: Coroutine[Any, Any, AccountResult]) -> AccountResult | _Suspended:
    """Drive ``coro`` until it ends (its result) or first suspends (to finish in a loop)."""
    steps = coro.__await__()
    context = contextvars.copy_context()  # what the pass sets stays in it (popkeep.logs)
    try:
        yielded = context.run(steps.send, None)
    except StopIteration as done:
        result: AccountResult = done.value
        return result
    if yielded is not None:  # a future: something reached for a loop that is not there
        steps.close()
        raise RuntimeError(f"a pass driven without an event loop awaited {yielded!r}")
    return _Suspended(steps, context.run(logs.current_account))


def _begin_all(
    coros: Sequence[Coroutine[Any, Any, AccountResult]],
) -> list[AccountResult | _Suspended]:
    """:func:`_begin` each; one in this thread, more in threads, CONCURRENCY at a time."""
    if len(coros) <= 1:
        return [_begin(coro) for coro in coros]
    begun: list[AccountResult | _Suspended | None] = [None] * len(coros)
    failures: list[BaseException] = []
    gate = threading.Semaphore(CONCURRENCY)

    def one(index: int) -> None:
        with gate:
            try:
                begun[index] = _begin(coros[index])
            except BaseException as exc:  # a bug, not a PopkeepError: raised below
                failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,), name=f"popkeep-pass-{i}", daemon=True)
               for i in range(len(coros))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [b for b in begun if b is not None]


async def _finish_all(suspended: Sequence[_Suspended]) -> list[AccountResult]:
    import asyncio

    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(rest: _Suspended) -> AccountResult:
        async with gate:
            with logs.account(rest.account or ""):
                return await rest

    return list(await asyncio.gather(*(one(rest) for rest in suspended)))


def poll(
    app: App,
    names: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    then: Callable[[list[AccountResult]], None] | None = None,
) -> list[AccountResult]:
    """``App.fetch`` for a process with no event loop (``popkeep fetch``, the demo).

    The first accounts start logging in as soon as their locks are held; every
    pass is driven without a loop; an event loop starts only for the passes with
    something to fetch or delete. Results in the accounts' order. ``then(results)``
    runs before the locks are released, with no event loop running (``popkeep
    fetch`` delivers the alerts there: docs/alerts.md).
    """
    from popkeep.cli.quick import end_startup

    end_startup()  # the app is loaded
    with ExitStack() as logins:
        started = 0

        def early(name: str, factory: SessionFactory) -> SessionFactory:
            nonlocal started
            if started >= CONCURRENCY:
                return factory
            started += 1
            ahead = OpenedAhead(factory, name)
            logins.callback(ahead.discard)  # a failed start-up closes what it opened
            return ahead

        from popkeep.transport.loopless import open_stream  # blocking until a loop runs

        with app.passes(names, progress, connect=early, opener=open_stream) as passes:
            begun = _begin_all([passes.collector.run(job) for job in passes.jobs])
            suspended = [b for b in begun if isinstance(b, _Suspended)]
            if suspended:
                import asyncio

                finished = iter(asyncio.run(_finish_all(suspended)))
                begun = [next(finished) if isinstance(b, _Suspended) else b for b in begun]
            results = [b for b in begun if not isinstance(b, _Suspended)] + passes.skipped
            if then is not None:
                then(results)
            return results


class OpenedAhead:
    """A session factory whose first call returns the session the constructor began.

    Its login runs on a worker thread as soon as the account is known (and locked),
    while the process finishes starting: a ``popkeep fetch`` with nothing new spends
    most of its time waiting for the server (connecting, logging in, the server
    opening a large mailbox: ≈ 60 ms for 20,000 messages on Dovecot) and on its own
    start-up; one runs during the other (bench/README.md, "Round 7").

    Later calls connect anew through ``factory``. A session nobody will take is
    closed (without committing: nothing was marked for deletion) once :meth:`discard`
    is called, by it or, if the login is still running then, by the login thread
    when it ends: discarding never waits for a slow server. Its first call blocks
    until the login ends: call it from a pass driven by :func:`poll`, not inside a
    running loop.
    """

    def __init__(self, factory: SessionFactory, name: str) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._session: SourceSession | None = None
        self._error: BaseException | None = None
        self._taken = False  # the first call happened (it waits for the thread)
        self._discarded = False
        self._thread = threading.Thread(target=self._open, args=(name,),
                                        name=f"popkeep-login-{name}", daemon=True)
        self._thread.start()

    def _open(self, name: str) -> None:
        # Opened while no event loop runs in this thread: the stream poll() passes
        # down does blocking I/O, so the factory's coroutine never suspends
        # (transport.loopless).
        try:
            with logs.account(name):
                session = drive(self._factory())
        except BaseException as exc:  # handed to the caller, in its thread
            self._error = exc
            return
        with self._lock:
            keep = not self._discarded
            if keep:
                self._session = session
        if not keep:
            drive(session.close())

    async def __call__(self) -> SourceSession:
        with self._lock:
            first = not (self._taken or self._discarded)
            self._taken = True
        if not first:
            return await self._factory()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._session is not None
        return self._session

    def discard(self) -> None:
        """Close the session unless a caller took it (now, or when its login ends)."""
        with self._lock:
            if self._taken or self._discarded:
                return
            self._discarded = True
            session, self._session = self._session, None
        if session is not None:
            drive(session.close())

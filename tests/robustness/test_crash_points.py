"""Exactly-once at every crash point: the process "dies" at each state-store write.

The SIGKILL test (tests/integration/test_kill.py) kills at random moments; the
windows between two durable steps (a Maildir rename and the receipt's commit,
QUIT +OK and ``mark_deleted``) are short and rarely hit by chance. Here every
durable step of a pass is a state-store write, so the store is wrapped and the
pass is stopped dead just before or just after the n-th call of each writing
method: from then on every store call raises, as if the process were gone (no
cleanup writes anything). The same is done at each call of the Maildir sink's
``stage`` and ``commit`` (a kill between staging a message into ``tmp/`` and making
its group durable). Then a normal pass recovers, and:

- every message is in the Maildir exactly once;
- nothing was deleted on the server that is not in the Maildir (checked right
  after the crash, too).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from popkeep.app import App
from popkeep.clock import SystemClock
from popkeep.collector import AccountJob, Collector
from popkeep.config.load import load_config
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import realistic_mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..integration.helpers import write_config

WRITES = (
    "journal", "record_delivered", "adopt", "mark_delete_pending", "mark_deleted",
    "revert_delete_pending", "mark_gone", "record_run",
)
PASSWORD = "crash-pw-1"


class Crash(BaseException):
    """The process died here (a BaseException: no ``except PopkeepError`` catches it)."""


class Dying:
    """Delegates to ``real`` (set by subclasses' ``__getattr__``); the process dies at the
    ``nth`` counted call of ``method``, before or after it takes effect. Once dead, every
    call raises :class:`Crash`. With ``method=None`` it only counts calls."""

    def __init__(self, real: Any, method: str | None = None, nth: int = 0,
                 after: bool = False) -> None:
        self._real, self._method, self._nth, self._after = real, method, nth, after
        self.calls: Counter[str] = Counter()
        self.dead = False

    def _fatal(self, name: str, counted: bool = True) -> bool:
        """Whether this call of ``name`` is the one that dies (raises if already dead)."""
        if self.dead:
            raise Crash(name)
        if counted:
            self.calls[name] += 1
            self.dead = name == self._method and self.calls[name] == self._nth
        return self.dead


class DyingStore(Dying):
    """A state store that dies at one of its writes (:data:`WRITES`)."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._fatal(name, counted=name in WRITES):
                if self._after:
                    attr(*args, **kwargs)
                raise Crash(name)
            return attr(*args, **kwargs)

        return call


def _digest(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def _mailbox() -> Mailbox:
    messages = list(realistic_mailbox(6, seed=7, size_profile="small"))
    return Mailbox.from_messages([*messages, messages[2]])  # one content listed twice


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[[], tuple[ScriptedPOP3Server, Path]]]:
    threads: list[ServerThread] = []

    def make() -> tuple[ScriptedPOP3Server, Path]:
        server = ScriptedPOP3Server(_mailbox(), user="taro", password=PASSWORD)
        thread = ServerThread(server)
        thread.start()
        threads.append(thread)
        base = tmp_path / f"w{len(threads)}"
        base.mkdir()
        return server, write_config(base, port=server.port, user="taro", password=PASSWORD,
                                    tls="none", delete_after="0s")

    yield make
    for thread in threads:
        thread.stop()


def _pass(config: Path, wrap: Callable[[SQLiteStore], Any],
          wrap_sink: Callable[[Any], Any] = lambda s: s) -> tuple[Any, bool]:
    """One collector pass staging one message at a time and committing every two
    (so every run has the same crash points); returns (store wrapper, crashed)."""
    cfg = load_config(config)
    real = SQLiteStore.open(cfg.state.path or config.parent / "state.db")
    store = wrap(real)
    app = App(cfg, store=real)
    job: AccountJob = app.job(cfg.accounts["isp"])
    job = job._replace(batch_messages=2, commit_messages=2, stage_messages=1,
                              commit_seconds=1e9, sinks=[wrap_sink(s) for s in job.sinks])
    try:
        result = asyncio.run(Collector(AsyncStore(store), SystemClock()).run(job))
        assert result.error is None, result.error
        return store, False
    except Crash:
        return store, True
    finally:
        real.close()


def _stored(config: Path) -> Counter[str]:
    maildir = config.parent / "Maildir"
    return Counter(_digest(p.read_bytes()) for d in ("new", "cur") if (maildir / d).is_dir()
                   for p in (maildir / d).iterdir())


def _crash_points(world: Callable[[], tuple[ScriptedPOP3Server, Path]]) -> list[tuple[str, int]]:
    _, config = world()
    counter, crashed = _pass(config, DyingStore)
    assert not crashed
    return [(name, n) for name in WRITES for n in range(1, counter.calls[name] + 1)]


def test_every_crash_point_recovers_exactly_once(
    world: Callable[[], tuple[ScriptedPOP3Server, Path]],
) -> None:
    points = _crash_points(world)
    # 4 batches (one repeat is adopted), one DELE round, the run record.
    assert {name for name, _ in points} >= {"journal", "record_delivered", "adopt",
                                            "mark_delete_pending", "mark_deleted"}
    for name, nth in points:
        for after in (False, True):
            where = f"{'after' if after else 'before'} {name} #{nth}"
            server, config = world()
            by_uid = {u: _digest(server.mailbox.message(u)) for u in server.mailbox.uids}
            source = set(by_uid.values())
            _, crashed = _pass(config, functools.partial(DyingStore, method=name, nth=nth,
                                                         after=after))
            assert crashed, where
            deleted = {by_uid[u] for u in server.mailbox.deleted}
            assert deleted <= set(_stored(config)), f"{where}: deleted but not stored"
            _pass(config, lambda s: s)  # recovery: a normal pass
            stored = _stored(config)
            assert set(stored) == source and max(stored.values()) == 1, where
            assert len(server.mailbox) == 0, f"{where}: recovery did not finish the deletions"


SINK_STEPS = ("stage", "commit")


class DyingSink(Dying):
    """A staging sink that dies at one of its steps. ``discard`` dies too once dead: a
    killed process cleans nothing up, so its staged files stay in ``tmp/``."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in (*SINK_STEPS, "discard", "deliver", "find"):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._fatal(name):
                if self._after:
                    await attr(*args, **kwargs)
                raise Crash(name)
            return await attr(*args, **kwargs)

        return call


def test_every_crash_between_staging_and_commit_recovers_exactly_once(
    world: Callable[[], tuple[ScriptedPOP3Server, Path]],
) -> None:
    _, config = world()
    counting: list[DyingSink] = []

    def count(real: Any) -> DyingSink:
        counting.append(DyingSink(real))
        return counting[0]

    _pass(config, lambda s: s, count)
    points = [(name, n) for name in SINK_STEPS for n in range(1, counting[0].calls[name] + 1)]
    assert len(points) >= 6 + 3  # a message staged at a time, committed two by two
    leftovers = 0  # staged files a "killed" run left in tmp/
    for name, nth in points:
        for after in (False, True):
            where = f"{'after' if after else 'before'} sink.{name} #{nth}"
            server, config = world()
            by_uid = {u: _digest(server.mailbox.message(u)) for u in server.mailbox.uids}
            dying = functools.partial(DyingSink, method=name, nth=nth, after=after)
            _, crashed = _pass(config, lambda s: s, dying)
            assert crashed, where
            assert {by_uid[u] for u in server.mailbox.deleted} <= set(_stored(config)), where
            leftovers += len(list((config.parent / "Maildir" / "tmp").iterdir()))
            _pass(config, lambda s: s)  # recovery: a normal pass
            stored = _stored(config)
            assert set(stored) == set(by_uid.values()), where
            assert max(stored.values()) == 1, where
            assert len(server.mailbox) == 0, where
    assert leftovers > 0, "no crash point left a staged file behind"

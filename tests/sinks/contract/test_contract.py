"""The sink contract: every registered sink (see :mod:`.registry`) against every case.

- a SIGKILL at every write/append boundary, then recovery → every message held,
  complete, once (at-least-once sinks: at most one extra copy);
- ENOSPC or EFBIG at any point → a one-line DeliveryError, no receipt, nothing
  incomplete held; then a rerun delivers each message once;
- short writes → the complete messages, no error;
- message k of a batch failing → the others are found again or redelivered, none
  twice, the rest of the batch delivered by the rerun;
- a timeout after the far side committed → recovery looks before sending again
  (exactly once), or the duplicate stays within the at-least-once bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from popkeep.errors import DeliveryError, MessageRefused
from popkeep.model import Receipt

from .registry import REFUSE_MARK, Adapter, Entry, batch_bytes, canonical, deliveries, entries

ROOT = Path(__file__).resolve().parents[3]
ENTRIES = entries()


def _params(wanted: Callable[[Entry], object] = lambda e: True) -> list[object]:
    return [pytest.param(e, id=e.name, marks=e.marks) for e in ENTRIES if wanted(e)]


def _prepare(entry: Entry, request: pytest.FixtureRequest, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if entry.setup is not None:
        entry.setup(request, directory)
    return directory


def check(adapter: Adapter, extra: int, when: str) -> None:
    """Every message held complete; exactly once, or at most ``extra`` copies more."""
    expected = Counter(canonical(m) for m in batch_bytes())
    held = Counter(canonical(m) for m in adapter.held())
    stray = [m[:80] for m in held if m not in expected]
    assert not stray, f"{when}: incomplete or foreign copies held: {stray}"
    missing = [m[:60] for m in expected if m not in held]
    assert not missing, f"{when}: messages missing: {missing}"
    bound = 1 if adapter.exactly_once else 1 + extra
    twice = {m[:60]: n for m, n in held.items() if n > bound}
    assert not twice, f"{when}: held more than {bound} time(s): {twice}"


async def recover(adapter: Adapter, kept: int = 0) -> list[Receipt]:
    """What the collector does after a crash: ask for every journaled key, deliver the rest
    (all but the first ``kept``, whose receipts a failed ``deliver`` returned)."""
    sink = adapter.sink()
    await sink.open()
    try:
        todo, receipts = [], []
        for delivery in deliveries()[kept:]:
            found = await sink.find(delivery.key, delivery.message) if sink.exactly_once else None
            if found is None:
                todo.append(delivery)
            else:
                receipts.append(found)
        return receipts + (await sink.deliver(todo) if todo else [])
    finally:
        await sink.close()


async def deliver_once(adapter: Adapter) -> list[Receipt]:
    sink = adapter.sink()
    await sink.open()
    try:
        return await sink.deliver(deliveries())
    finally:
        await sink.close()


def _child(entry: Entry, directory: Path, kill_at: int) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tests.sinks.contract.child", entry.name, str(directory),
         str(kill_at)],
        cwd=ROOT, capture_output=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("entry", _params(lambda e: e.kill_points))
def test_kill_at_every_boundary_then_recovery(
    entry: Entry, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    calibration = _prepare(entry, request, tmp_path / "calibrate")
    run = _child(entry, calibration, 0)
    assert run.returncode == 0, run.stderr.decode()
    boundaries = int(run.stdout)
    assert boundaries > 0
    check(entry.build(calibration), 0, "unkilled run")
    for kill_at in range(1, boundaries + 1):
        directory = _prepare(entry, request, tmp_path / f"kill{kill_at}")
        run = _child(entry, directory, kill_at)
        assert run.returncode in (-9, 0), run.stderr.decode()
        adapter = entry.build(directory)
        asyncio.run(recover(adapter))
        check(adapter, 1, f"killed before boundary {kill_at} of {boundaries}")


class Faults:
    """``os.write`` that fails with ``error`` once ``budget`` octets were written (a short
    write first, like a filling disk), or when the data contains ``trigger``; ``limit``
    caps every write (short writes without an error)."""

    def __init__(self, error: int | None, budget: int = -1, trigger: bytes = b"",
                 limit: int = 0) -> None:
        self.error, self.budget, self.trigger, self.limit = error, budget, trigger, limit
        self.real = os.write
        self.written = 0

    def write(self, fd: int, data: bytes) -> int:
        view = memoryview(data)
        if self.limit:
            view = view[: self.limit]
        if self.error is not None and self.trigger and self.trigger in bytes(data):
            raise OSError(self.error, os.strerror(self.error))
        if self.error is not None and self.budget >= 0:
            room = self.budget - self.written
            if room <= 0:
                raise OSError(self.error, os.strerror(self.error))
            view = view[:room]
        done = self.real(fd, view)
        self.written += done
        return done


@contextmanager
def faulty_os_write(monkeypatch: pytest.MonkeyPatch, faults: Faults) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", faults.write)
        yield


def _total_written(adapter: Adapter, monkeypatch: pytest.MonkeyPatch) -> int:
    counting = Faults(None)
    with faulty_os_write(monkeypatch, counting):
        asyncio.run(deliver_once(adapter))
    return counting.written


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG], ids=["ENOSPC", "EFBIG"])
@pytest.mark.parametrize("entry", _params(lambda e: e.disk_faults))
def test_disk_full_at_any_point_issues_no_receipt(
    entry: Entry, code: int, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    total = _total_written(entry.build(_prepare(entry, request, tmp_path / "size")),
                           monkeypatch)
    for budget in sorted({0, 1, 100, total // 3, total // 2, total - 100, total - 1}):
        directory = _prepare(entry, request, tmp_path / f"full{budget}")
        adapter = entry.build(directory)
        with faulty_os_write(monkeypatch, Faults(code, budget)), \
                pytest.raises(DeliveryError) as failure:
            asyncio.run(deliver_once(adapter))
        assert "\n" not in str(failure.value), "one clear line"
        assert os.strerror(code) in str(failure.value)
        # Nothing incomplete is held; what is held is complete (found by recovery).
        held = {canonical(m) for m in adapter.held()}
        assert held <= {canonical(m) for m in batch_bytes()}, f"partial copy at {budget}"
        asyncio.run(recover(adapter))
        check(adapter, 1, f"{os.strerror(code)} after {budget} of {total} octets")


@pytest.mark.parametrize("entry", _params(lambda e: e.disk_faults))
def test_short_writes_store_every_byte(
    entry: Entry, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = entry.build(_prepare(entry, request, tmp_path))
    with faulty_os_write(monkeypatch, Faults(None, limit=997)):
        receipts = asyncio.run(deliver_once(adapter))
    assert len(receipts) == len(batch_bytes())
    check(adapter, 0, "short writes")


@pytest.mark.parametrize("entry", _params(lambda e: e.disk_faults))
def test_message_k_of_a_batch_failing(
    entry: Entry, request: pytest.FixtureRequest, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = entry.build(_prepare(entry, request, tmp_path))
    with faulty_os_write(monkeypatch, Faults(errno.ENOSPC, trigger=REFUSE_MARK)), \
            pytest.raises(DeliveryError) as failure:
        asyncio.run(deliver_once(adapter))
    kept = failure.value.delivered  # receipts of the messages before the failing one
    assert len(kept) <= 1, "message 2 failed: at most message 1 is delivered"
    receipts = asyncio.run(recover(adapter, kept=len(kept)))
    assert len(kept) + len(receipts) == len(batch_bytes())
    check(adapter, 0, "after message 2 of 3 failed and a rerun (every sink: once)")
    if adapter.exactly_once:  # a rerun that still finds every journaled key
        assert len(asyncio.run(recover(adapter))) == len(batch_bytes())
        check(adapter, 0, "a rerun must not copy twice")


@pytest.mark.parametrize("entry", _params(lambda e: e.hang_after_commit))
def test_timeout_after_the_far_side_committed(
    entry: Entry, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    directory = _prepare(entry, request, tmp_path)
    assert entry.hang_after_commit is not None
    entry.hang_after_commit(directory)
    adapter = entry.build(directory)
    if adapter.exactly_once:  # it may look (find) and carry on, or leave it to recovery
        with contextlib.suppress(DeliveryError):
            asyncio.run(deliver_once(adapter))
    else:
        with pytest.raises(DeliveryError, match="within"):
            asyncio.run(deliver_once(adapter))
    adapter = entry.build(directory)
    asyncio.run(recover(adapter))
    check(adapter, 1, "recovery after a timeout")


@pytest.mark.parametrize("entry", _params(lambda e: e.refuse_marked))
def test_message_k_refused_by_the_far_side(
    entry: Entry, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    directory = _prepare(entry, request, tmp_path)
    assert entry.refuse_marked is not None
    entry.refuse_marked(directory)
    adapter = entry.build(directory)
    with pytest.raises(MessageRefused) as failure:
        asyncio.run(deliver_once(adapter))
    assert "\n" not in str(failure.value), "one clear line"
    assert len(failure.value.delivered) == 1, "message 1 stored, message 2 refused"

    async def rest() -> list[Receipt]:  # what the collector does next: message 3
        sink = adapter.sink()
        await sink.open()
        try:
            return await sink.deliver(deliveries()[2:])
        finally:
            await sink.close()

    assert len(asyncio.run(rest())) == 1
    first, _, third = batch_bytes()
    held = Counter(canonical(m) for m in adapter.held())
    assert held == Counter([canonical(first), canonical(third)]), "each once, none refused"

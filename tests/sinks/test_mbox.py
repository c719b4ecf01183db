"""The mbox sink: mboxrd quoting round-trip, From_ line, locking, trace-header find."""

from __future__ import annotations

import asyncio
import mailbox
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from popkeep.clock import FakeClock
from popkeep.config.sink_types import MboxSinkConfig
from popkeep.errors import DeliveryError
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.mbox import MboxSink, mboxrd_quote, mboxrd_unquote
from popkeep.spool import SpooledMessage

TRICKY = (
    b"Return-Path: <sender@example.org>\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"Subject: from lines\r\n"
    b"\r\n"
    b"From the start\r\n"
    b">From quoted once\r\n"
    b">>From quoted twice\r\n"
    b" From not at start\r\n"
    b"Fromage is not a From line\r\n"
    b"last line without newline"
)


def make(data: bytes, account: str = "isp") -> Delivery:
    message = SpooledMessage.from_bytes(data)
    return Delivery(account, "uid", delivery_key(account, message.sha256), message)


def sink(path: Path, **kw: object) -> MboxSink:
    config = MboxSinkConfig(name="box", path=path, lock_timeout=0.5, **kw)  # type: ignore[arg-type]
    return MboxSink(config, FakeClock(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)))


def read_back(path: Path) -> list[bytes]:
    """Split an mboxrd file by From_ lines and undo the quoting (independent reader)."""
    messages: list[list[bytes]] = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        if line.startswith(b"From "):
            messages.append([])
            continue
        messages[-1].append(mboxrd_unquote(line))
    # each message ends with the separator empty line
    return [b"\n".join(lines[:-1]) + b"\n" for lines in messages]


def test_quote_table() -> None:
    lines = list(mboxrd_quote([b"From a\n>From b\nx From c\n>>From d\nFrom"]))
    assert lines == [b">From a\n", b">>From b\n", b"x From c\n", b">>>From d\n", b"From\n"]


def test_quote_across_chunk_boundaries() -> None:
    whole = b"".join(mboxrd_quote([b"Fr", b"om split\nok\n>F", b"rom x\n"]))
    assert whole == b">From split\nok\n>>From x\n"


def test_round_trip_and_from_line(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    box = sink(path)
    plain = b"Subject: plain\r\n\r\nbody\r\n"
    receipts = asyncio.run(box.deliver([make(TRICKY), make(plain)]))
    assert [r.sink for r in receipts] == ["box", "box"]
    assert receipts[0].ref == "0" and int(receipts[1].ref) > 0
    raw = path.read_bytes()
    assert raw.startswith(b"From sender@example.org Wed Mar  4 05:06:07 2026\n")
    assert b"\nFrom MAILER-DAEMON Wed Mar  4 05:06:07 2026\n" in raw
    assert b"\r" not in raw
    expected = [TRICKY.replace(b"\r\n", b"\n") + b"\n", plain.replace(b"\r\n", b"\n")]
    assert read_back(path) == expected
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "inbox.lock").exists()


def test_python_mailbox_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    asyncio.run(sink(path).deliver([make(TRICKY)]))
    box = mailbox.mbox(path, create=False)
    try:
        (message,) = list(box)
    finally:
        box.close()
    assert message["Subject"] == "from lines"
    assert message.get_from().startswith("sender@example.org ")
    # Python's reader does not unquote: it shows the mboxrd quoting as stored.
    assert b"\n>>From quoted once\n" in message.as_bytes()


def test_without_trace_headers_find_uses_the_journal(tmp_path: Path) -> None:
    box = sink(tmp_path / "inbox")
    delivery, other = make(TRICKY), make(b"Subject: two\r\n\r\n2\r\n")
    (receipt,) = asyncio.run(box.deliver([delivery]))
    assert box.exactly_once is True
    assert b"X-Popkeep" not in (tmp_path / "inbox").read_bytes()
    # A new sink object (a new run) finds it through the journal, at the same offset.
    assert asyncio.run(sink(tmp_path / "inbox").find(delivery.key)) == receipt
    assert asyncio.run(sink(tmp_path / "inbox").find(other.key)) is None


def test_find_checks_the_octets_the_journal_points_at(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    delivery = make(TRICKY)
    asyncio.run(sink(path).deliver([delivery]))
    data = path.read_bytes()
    with path.open("r+b") as file:  # the same length, one octet changed
        file.seek(len(data) - 5)
        file.write(b"X")
    assert asyncio.run(sink(path).find(delivery.key)) is None


def test_a_partial_copy_with_its_trace_line_is_not_found(tmp_path: Path) -> None:
    """Issue 16: recovery took any copy containing the trace line as delivered."""
    path = tmp_path / "inbox"
    big = make(b"Subject: big\r\n\r\n" + b"a line of the body\r\n" * 20000)
    asyncio.run(sink(path, trace_headers=True).deliver([big]))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut, as a crash or a full disk would
    (tmp_path / "inbox.popkeep-journal").unlink()  # only the trace line is left to go by
    assert asyncio.run(sink(path, trace_headers=True).find(big.key, big.message)) is None
    path.write_bytes(data)
    (tmp_path / "inbox.popkeep-journal").unlink(missing_ok=True)
    found = asyncio.run(sink(path, trace_headers=True).find(big.key, big.message))
    assert found is not None


def test_an_interrupted_append_is_cut_off_when_opened(tmp_path: Path) -> None:
    """What a SIGKILL mid-append leaves (journal: begin, no end) is removed on open."""
    path = tmp_path / "inbox"
    first = make(TRICKY)
    asyncio.run(sink(path).deliver([first]))
    whole = path.read_bytes()
    journal = tmp_path / "inbox.popkeep-journal"
    with journal.open("a") as file:
        file.write(f"begin {path.stat().st_ino} {len(whole)}\n")
    with path.open("ab") as file:
        file.write(b"From MAILER-DAEMON Wed Mar  4 05:06:07 2026\nSubject: half")
    second = make(b"Subject: two\r\n\r\n2\r\n")
    box = sink(path)
    asyncio.run(box.open())
    assert path.read_bytes() == whole
    asyncio.run(box.deliver([second]))
    assert read_back(path) == [TRICKY.replace(b"\r\n", b"\n") + b"\n", b"Subject: two\n\n2\n"]


def test_a_missing_final_line_end_is_repaired_before_appending(tmp_path: Path) -> None:
    """Issue 16: the next From_ line was glued to a cut line, and the mbox read as one."""
    path = tmp_path / "inbox"
    path.write_bytes(b"From someone Wed Mar  4 05:06:07 2026\nSubject: cut\n\nhalf a li")
    asyncio.run(sink(path).deliver([make(b"Subject: two\r\n\r\n2\r\n")]))
    assert read_back(path) == [b"Subject: cut\n\nhalf a li\n", b"Subject: two\n\n2\n"]


def test_a_lock_left_by_a_dead_process_is_broken_at_once(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, check=True)
    (tmp_path / "inbox.lock").write_bytes(gone.stdout)  # fresh, but its process is gone
    started = time.monotonic()
    asyncio.run(sink(path).deliver([make(TRICKY)]))
    assert time.monotonic() - started < 0.4  # lock_timeout is 0.5 s
    assert not (tmp_path / "inbox.lock").exists()


def test_trace_headers_make_find_work(tmp_path: Path) -> None:
    box = sink(tmp_path / "inbox", trace_headers=True)
    first, second = make(TRICKY), make(b"Subject: two\r\n\r\n2\r\n")
    asyncio.run(box.deliver([first]))
    assert box.exactly_once is True
    found = asyncio.run(box.find(first.key))
    assert found is not None and found.sink == "box"
    assert asyncio.run(box.find(second.key)) is None
    raw = (tmp_path / "inbox").read_bytes()
    assert b"\nX-Popkeep-Account: isp\n" in raw
    assert f"Received: by popkeep (sink box) id {first.key}; ".encode() in raw


def test_dotlock_held_by_other_times_out(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    (tmp_path / "inbox.lock").write_text(f"{os.getppid()}\n")  # a live process
    with pytest.raises(DeliveryError, match="held by another program"):
        asyncio.run(sink(path).deliver([make(TRICKY)]))
    assert not path.exists() or path.read_bytes() == b""


def test_stale_dotlock_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    lock = tmp_path / "inbox.lock"
    lock.write_text(f"{os.getppid()}\n")  # alive, but the lock is an hour old
    old = time.time() - 3600
    os.utime(lock, (old, old))
    asyncio.run(sink(path, stale_lock=60.0).deliver([make(TRICKY)]))
    assert read_back(path) == [TRICKY.replace(b"\r\n", b"\n") + b"\n"]
    assert not lock.exists()


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def test_fcntl_lock_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    path.write_bytes(b"")
    # lockf locks are per process, so the holder must be another process.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(DeliveryError, match="fcntl"):
            asyncio.run(sink(path).deliver([make(TRICKY)]))
        assert path.read_bytes() == b""
        assert not (tmp_path / "inbox.lock").exists()
    finally:
        holder.communicate(b"", timeout=10)
    asyncio.run(sink(path).deliver([make(TRICKY)]))
    assert len(read_back(path)) == 1


def test_concurrent_writers_do_not_interleave(tmp_path: Path) -> None:
    path = tmp_path / "inbox"
    big = b"Subject: big\r\n\r\n" + b"From x line\r\n" * 20000
    errors: list[BaseException] = []

    def write() -> None:
        try:
            box = MboxSink(MboxSinkConfig(name="b", path=path, lock_timeout=20.0))
            asyncio.run(box.deliver([make(big)]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert read_back(path) == [big.replace(b"\r\n", b"\n")] * 4

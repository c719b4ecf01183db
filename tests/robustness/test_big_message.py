"""A 200 MB message: streamed to disk with bounded memory, or left on the server when
it is over ``max_message_size`` (a warning, counted as skipped, exit 0, never deleted)."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import Callable

import pytest

from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import big_message

from .conftest import Case

Hostile = Callable[..., Case]
SIZE = 200_000_000
SMALL = b"From: a@example.jp\r\nSubject: small\r\n\r\nsmall one\r\n"

pytestmark = pytest.mark.slow


def _mailbox() -> Mailbox:
    box = Mailbox()
    box.add_stream(lambda: big_message(SIZE, seed=3), SIZE, "big-one")
    box.add(SMALL, "small-one")
    return box


def _lf_sha256() -> str:
    digest = hashlib.sha256()
    for chunk in big_message(SIZE, seed=3):  # every chunk ends on a CRLF
        digest.update(chunk.replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def test_200_mb_message_is_streamed_to_disk_with_bounded_memory(hostile: Hostile) -> None:
    case = hostile(_mailbox())
    case.configure(delete_after="0s", extra='max_message_size = "300MB"')
    tracemalloc.start()
    try:
        code, err = case.fetch()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    sizes = sorted(p.stat().st_size for p in case.files())
    assert len(sizes) == 2 and sizes[1] > 190_000_000
    big = max(case.files(), key=lambda p: p.stat().st_size)
    with big.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == _lf_sha256()
    # Python allocations of client *and* server thread, for a 200 MB message.
    assert peak < 32 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"
    assert len(case.server.mailbox) == 0


def test_message_over_max_message_size_is_left_on_the_server(hostile: Hostile) -> None:
    case = hostile(_mailbox())
    case.configure(delete_after="0s", extra='max_message_size = "100MB"')
    code, err = case.fetch()
    assert code == 0, err  # the rest of the mailbox was collected; see docs/guarantees.md
    assert any("larger than max_message_size" in line for line in err), err
    assert case.server.mailbox.uids == ["big-one"]  # never retrieved, never deleted
    assert case.server.sessions[-1].retrieved == ["small-one"]
    assert case.query("SELECT skipped FROM runs") == [1]
    assert case.query("SELECT uid FROM messages") == ["small-one"]
    code, err = case.fetch()  # and again on every run, with the same warning
    assert code == 0 and any("left on the server" in line for line in err)
    assert case.server.mailbox.uids == ["big-one"]

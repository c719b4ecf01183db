"""Memory does not grow with the mailbox (issue 16 item 3, docs/guarantees.md).

A person who keeps everything on the server has a 200,000-message mailbox: its
first collection, polling it with new mail and without, and the pass that deletes
all of it (the first ``delete_after`` pass after years of keeping), and the first poll
after ``popkeep import-state`` (sizes and digests of every message) stay under 100 MB
resident (the issue's unit: 10**8 bytes, 95.4 MiB). Measured as the peak resident
set (``ru_maxrss``) of a real ``popkeep fetch`` process, start-up included, against
the scripted server on 127.0.0.1 (bench/memory.py --kept measures the same passes
one after another, bench/README.md "Bounded memory").
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from popkeep.clock import SystemClock
from popkeep.collector import Collector, pipeline
from popkeep.model import RetentionPolicy
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.base import Collected
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..test_sources import FolderSource, _pass
from ..test_sources import _message as _folder_message

MESSAGES = 200_000
NEW = 1_000
BOUND_MB = 100  #: 10**6 bytes (ru_maxrss counts KiB)

# The child's own peak: the intermediate process has no other child.
_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _message(i: int) -> bytes:
    return (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: kept %d\r\n"
        b"Message-ID: <%d@example.org>\r\n\r\nbody %d\r\n" % (i, i, i)
    )


def _uid(i: int) -> str:
    return f"uid-{i:08d}-abcdefghij"


def _config(base: Path, port: int, delete_after: str = "never") -> Path:
    path = base / "config.toml"
    path.write_text(
        f'[state]\npath = "{base / "state.db"}"\n\n'
        f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{base / "Maildir"}"\n\n'
        f'[[account]]\nname = "keep"\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
        'user = "u"\npassword = "pw-pw-pw"\n'
        f'delete_after = "{delete_after}"\n'
    )
    path.chmod(0o600)
    return path


def _peak_fetch(config: Path) -> tuple[int, float]:
    """(exit code, peak RSS in MB) of one ``popkeep fetch`` process."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "popkeep", "-c", str(config),
         "fetch"],
        check=True, capture_output=True, text=True, timeout=240,
    ).stdout.split()
    return int(out[0]), int(out[1]) * 1024 / 10**6  # ru_maxrss is in KiB on Linux


def _collected(base: Path, count: int, first: datetime) -> Mailbox:
    """A mailbox of ``count`` messages, every one known to the state as collected (by
    popkeep, or another client through import-state) at ``first``, with its LIST size,
    so that STAT adds up."""
    store = SQLiteStore.open(base / "state.db")
    try:
        collected = [Collected(_uid(i), first, len(_message(i))) for i in range(count)]
        store.mark_collected("keep", collected, ["home"], "test", first)
    finally:
        store.close()
    return Mailbox((_uid(i), _message(i)) for i in range(MESSAGES))


@pytest.mark.slow
def test_collecting_a_200k_message_mailbox_stays_under_100_mb(tmp_path: Path) -> None:
    """The first collection: every message new, into an empty Maildir. Before, the
    Maildir sink's index of the files it wrote (a Python set of their hashes) and
    what glibc kept of what the pass freed took it to ≈ 112 MB."""
    box = Mailbox((_uid(i), _message(i)) for i in range(MESSAGES))
    server = ScriptedPOP3Server(box, user="u", password="pw-pw-pw")
    with ServerThread(server) as thread:
        code, peak = _peak_fetch(_config(tmp_path, thread.port))
        assert code == 0
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == MESSAGES
    assert peak < BOUND_MB, f"first collection of {MESSAGES}: {peak:.1f} MB"


@pytest.mark.slow
def test_polling_a_200k_message_mailbox_stays_under_100_mb(tmp_path: Path) -> None:
    # All but the last NEW were collected before.
    box = _collected(tmp_path, MESSAGES - NEW, datetime.now(UTC))
    server = ScriptedPOP3Server(box, user="u", password="pw-pw-pw")
    with ServerThread(server) as thread:
        config = _config(tmp_path, thread.port)
        code, new_mail = _peak_fetch(config)
        assert code == 0
        assert len(list((tmp_path / "Maildir" / "new").iterdir())) == NEW
        code, nothing_new = _peak_fetch(config)
        assert code == 0
    assert new_mail < BOUND_MB, f"poll fetching {NEW} of {MESSAGES}: {new_mail:.1f} MB"
    assert nothing_new < BOUND_MB, f"no-op poll of {MESSAGES}: {nothing_new:.1f} MB"


@pytest.mark.slow
def test_deleting_all_of_a_200k_message_mailbox_stays_under_100_mb(tmp_path: Path) -> None:
    """The first pass under ``delete_after`` after years of keeping: every message is
    due. Before, the pass read every record and decided for each (≈ 185 MB)."""
    box = _collected(tmp_path, MESSAGES, datetime.now(UTC) - timedelta(days=30))
    server = ScriptedPOP3Server(box, user="u", password="pw-pw-pw")
    with ServerThread(server) as thread:
        config = _config(tmp_path, thread.port, delete_after="14d")
        code, peak = _peak_fetch(config)
        assert code == 0
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        assert store.account_totals("keep").deleted == MESSAGES
    finally:
        store.close()
    assert peak < BOUND_MB, f"deleting all {MESSAGES}: {peak:.1f} MB"


@pytest.mark.slow
def test_the_first_poll_after_import_state_of_200k_stays_under_100_mb(tmp_path: Path) -> None:
    """``popkeep import-state`` knows only the unique-ids: the first poll records the
    LIST size and TOP digest of every message. Before, it read every record first
    (≈ 225 MB)."""
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        collected = [Collected(_uid(i)) for i in range(MESSAGES)]
        store.mark_collected("keep", collected, ["home"], "imported", datetime.now(UTC))
    finally:
        store.close()
    box = Mailbox((_uid(i), _message(i)) for i in range(MESSAGES))
    server = ScriptedPOP3Server(box, user="u", password="pw-pw-pw")
    with ServerThread(server) as thread:
        code, peak = _peak_fetch(_config(tmp_path, thread.port))
        assert code == 0
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        assert store.live_octets("keep") == (sum(len(_message(i)) for i in range(MESSAGES)), 0)
    finally:
        store.close()
    assert peak < BOUND_MB, f"first poll after import-state of {MESSAGES}: {peak:.1f} MB"


@pytest.mark.parametrize(("group", "released"), [(10_000, 0), (2, 3)])
def test_only_a_long_pass_gives_memory_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: int, released: int
) -> None:
    """collector.memory.release (glibc's malloc_trim, through ctypes) runs after a
    commit only once the pass has committed ``fetch_group`` messages: a small pass
    never calls it, so never loads ctypes. (Groups of 2 of 5 messages: a commit each,
    after 2, 4 and 5.)"""
    calls: list[None] = []
    monkeypatch.setattr(pipeline, "release", lambda: calls.append(None))
    source = FolderSource({f"7/{n}": _folder_message(n) for n in range(5)})
    job = _pass(tmp_path, source, RetentionPolicy(None))._replace(fetch_group=group)
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        result = asyncio.run(Collector(AsyncStore(store), SystemClock()).run(job))
    finally:
        store.close()
    assert result.error is None and result.summary.delivered == 5
    assert len(calls) == released

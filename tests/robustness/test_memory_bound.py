"""Memory does not grow with the mailbox (issue 16 item 3, docs/guarantees.md).

A person who keeps everything on the server has a 200,000-message mailbox: polling
it, with new mail and without, stays under 100 MiB resident. Measured as the peak
resident set (``ru_maxrss``) of a real ``popkeep fetch`` process against the
scripted server on 127.0.0.1; the first collection of all 200,000 is measured in
bench/README.md ("Bounded memory"), too long for a test.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from popkeep.state.base import Collected
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

MESSAGES = 200_000
NEW = 1_000
BOUND_MIB = 100

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


def _config(base: Path, port: int) -> Path:
    path = base / "config.toml"
    path.write_text(
        f'[state]\npath = "{base / "state.db"}"\n\n'
        f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{base / "Maildir"}"\n\n'
        f'[[account]]\nname = "keep"\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
        'user = "u"\npassword = "pw-pw-pw"\ndelete_after = "never"\n'
    )
    path.chmod(0o600)
    return path


def _peak_fetch(config: Path) -> tuple[int, float]:
    """(exit code, peak RSS in MiB) of one ``popkeep fetch`` process."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "popkeep", "-c", str(config),
         "fetch"],
        check=True, capture_output=True, text=True, timeout=240,
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.slow
def test_polling_a_200k_message_mailbox_stays_under_100_mib(tmp_path: Path) -> None:
    box = Mailbox((_uid(i), _message(i)) for i in range(MESSAGES))
    # All but the last NEW were collected before (by popkeep, or another client
    # through import-state): their LIST sizes are recorded, so STAT adds up.
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        collected = [
            Collected(_uid(i), None, len(_message(i))) for i in range(MESSAGES - NEW)
        ]
        store.mark_collected("keep", collected, ["home"], "test", datetime.now(UTC))
    finally:
        store.close()
    server = ScriptedPOP3Server(box, user="u", password="pw-pw-pw")
    with ServerThread(server) as thread:
        config = _config(tmp_path, thread.port)
        code, new_mail = _peak_fetch(config)
        assert code == 0
        assert len(list((tmp_path / "Maildir" / "new").iterdir())) == NEW
        code, nothing_new = _peak_fetch(config)
        assert code == 0
    assert new_mail < BOUND_MIB, f"poll fetching {NEW} of {MESSAGES}: {new_mail:.1f} MiB"
    assert nothing_new < BOUND_MIB, f"no-op poll of {MESSAGES}: {nothing_new:.1f} MiB"

"""The benchmark's raw reference fetcher and its verification, against the real Dovecot.

Not a benchmark (nothing is timed): checks that bench/raw_reference.py stores
every message byte for byte (dot-unstuffed, CRLF→LF), that a second run with
its state fetches nothing, and that bench/measure.verify notices a missing,
altered or duplicated file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from popkeep.testing import mailgen

from ..fixtures.dovecot import Dovecot

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import measure  # noqa: E402

pytestmark = pytest.mark.dovecot

# Lines that need dot-stuffing on the wire (RFC 1939 §3), including one that
# would read as the terminator if the server did not stuff it.
DOTTY = (
    b"From: a@example.com\r\nTo: b@example.com\r\nSubject: dots\r\n\r\n"
    b".\r\n..\r\n.leading dot\r\nmiddle . dot\r\n. \r\nend\r\n"
)


def _fetch(dovecot: Dovecot, user: str, maildir: Path, state: Path, *tls: str) -> None:
    port = dovecot.pop3s_port if tls else dovecot.pop3_port
    argv = [
        sys.executable,
        str(BENCH / "raw_reference.py"),
        "--port",
        str(port),
        "--user",
        user,
        "--maildir",
        str(maildir),
        "--state",
        str(state),
        *tls,
    ]
    env = {**os.environ, "BENCH_PASS": dovecot.password}
    subprocess.run(argv, env=env, check=True, timeout=60, capture_output=True)


@pytest.fixture
def filled(dovecot: Dovecot, dovecot_user: str) -> tuple[str, measure.Expected]:
    messages = [
        *mailgen.realistic_mailbox(20, seed=3),
        DOTTY,
        b"".join(mailgen.big_message(3 * 1024 * 1024, seed=3)),
    ]
    expected = measure.Expected()
    for message in messages:
        expected.add(message)
    dovecot.add_messages(dovecot_user, messages)
    return dovecot_user, expected


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_raw_reference_stores_every_message_exactly(
    dovecot: Dovecot, filled: tuple[str, measure.Expected], tmp_path: Path, tls: bool
) -> None:
    user, expected = filled
    extra = ("--tls", "--ca-file", str(dovecot.ca_file)) if tls else ()
    _fetch(dovecot, user, tmp_path / "Maildir", tmp_path / "uidls", *extra)

    verdict = measure.verify(tmp_path / "Maildir", expected)
    assert verdict.ok, verdict.describe()
    assert verdict.stored == 22

    # No-op poll: the state remembers every UIDL, nothing is fetched again.
    _fetch(dovecot, user, tmp_path / "Maildir", tmp_path / "uidls", *extra)
    assert measure.verify(tmp_path / "Maildir", expected).ok


def test_verify_flags_missing_altered_and_duplicated_files(
    dovecot: Dovecot, filled: tuple[str, measure.Expected], tmp_path: Path
) -> None:
    user, expected = filled
    maildir = tmp_path / "Maildir"
    _fetch(dovecot, user, maildir, tmp_path / "uidls")
    files = sorted(measure.maildir_files(maildir))

    files[0].unlink()
    assert (measure.verify(maildir, expected).missing, measure.verify(maildir, expected).extra) == (
        1,
        0,
    )
    shutil.copy(files[1], maildir / "cur" / "duplicate")
    assert measure.verify(maildir, expected).extra == 1
    (maildir / "cur" / "duplicate").unlink()
    files[2].write_bytes(files[2].read_bytes() + b"x")
    verdict = measure.verify(maildir, expected)
    assert not verdict.ok and verdict.missing == 2 and verdict.extra == 1
    assert verdict.refolded == 0


def test_verify_explains_refolded_headers(tmp_path: Path) -> None:
    message = b"Subject: a fairly long subject\r\nFrom: x@example.com\r\n\r\nbody\r\n"
    expected = measure.Expected()
    expected.add(message)
    maildir = tmp_path / "Maildir"
    (maildir / "new").mkdir(parents=True)
    (maildir / "new" / "m").write_bytes(message.replace(b"a fairly", b"a\n fairly"))
    verdict = measure.verify(maildir, expected)
    assert not verdict.ok and verdict.refold_only
    assert "re-folded" in verdict.describe()

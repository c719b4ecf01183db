"""`popkeep baseline ACCOUNT`: what the server holds now counts as collected.

For a user whose old mail client already has everything: baseline logs in to the
test Dovecot, delivers nothing and deletes nothing, and the following fetch
delivers only mail that arrived afterwards; the retention clock of the marked
messages starts at the baseline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.mailgen import realistic_mailbox

from ..fixtures.dovecot import Dovecot
from .helpers import dovecot_config, fetch, maildir_messages

pytestmark = pytest.mark.dovecot


def test_baseline_then_fetch_delivers_only_newer_mail(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    dovecot.add_messages(dovecot_user, realistic_mailbox(4, seed=21))
    config = dovecot_config(dovecot, tmp_path, dovecot_user, delete_after="30d")
    before = datetime.now(UTC).replace(microsecond=0)

    capsys.readouterr()
    assert main(["-c", str(config), "baseline", "isp"]) == 0
    assert "isp: 4 message(s) on the server marked as collected" in capsys.readouterr().out
    assert not (tmp_path / "Maildir").exists() or not maildir_messages(tmp_path / "Maildir")

    later = list(realistic_mailbox(2, seed=22))
    dovecot.add_messages(dovecot_user, later)
    code, data = fetch(config, capsys)
    assert code == 0, data
    assert data["delivered"] == 2
    assert len(maildir_messages(tmp_path / "Maildir")) == 2

    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        messages = store.messages("isp")
    finally:
        store.close()
    marked = [m for m in messages.values() if m.sha256 is None]
    assert len(marked) == 4
    assert all(m.first_retrieved_at is not None and m.first_retrieved_at >= before
               for m in marked)
    assert all(m.size > 0 for m in marked)  # LIST's size, for the checks before DELE

    code, data = fetch(config, capsys)
    assert (code, data["delivered"]) == (0, 0)
    assert main(["-c", str(config), "baseline", "isp"]) == 0
    assert "isp: 0 message(s) on the server marked as collected (6 already known)" in (
        capsys.readouterr().out)

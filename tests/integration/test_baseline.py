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
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailgen import realistic_mailbox
from popkeep.testing.misbehaviour import Misbehaviour
from popkeep.testing.server import ScriptedPOP3Server

from ..fixtures.dovecot import Dovecot
from .helpers import (
    dovecot_config,
    fetch,
    maildir_messages,
    rewrite_then_reuse,
    server_config,
    stored_messages,
)

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

    messages = stored_messages(tmp_path / "state.db")
    marked = [m for m in messages.values() if m.sha256 is None]
    assert len(marked) == 4
    assert all(m.first_retrieved_at is not None and m.first_retrieved_at >= before
               for m in marked)
    assert all(m.size > 0 for m in marked)  # LIST's size, for the checks before DELE
    assert all(m.digest is not None for m in marked)  # TOP n 0's, to tell them apart

    code, data = fetch(config, capsys)
    assert (code, data["delivered"]) == (0, 0)
    assert main(["-c", str(config), "baseline", "isp"]) == 0
    assert "isp: 0 message(s) on the server marked as collected (6 already known)" in (
        capsys.readouterr().out)


def test_a_baselined_message_the_server_rewrites_is_not_fetched_again(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Baseline records each message's LIST size and TOP n 0 header digest, so a poll
    whose STAT octets moved tells a message the server rewrote (``Status:``) from new
    mail under its UIDL (docs/guarantees.md, point 10), as for fetched messages."""
    config = server_config(tmp_path, server, certs, delete_after="never")
    assert main(["-c", str(config), "baseline", "isp"]) == 0
    rewrite_then_reuse(server, config, tmp_path / "Maildir", capsys)


@pytest.mark.parametrize("server", [{"misbehave": Misbehaviour(no_uidl=True)}], indirect=True)
def test_baseline_of_a_server_without_uidl_reads_headers_not_messages(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without UIDL a message's key is its header digest and size: baseline reads
    those (TOP n 0, LIST) and retrieves nothing, as docs/cli.md says; only a deletion
    under such a key retrieves the message first (docs/guarantees.md)."""
    config = server_config(tmp_path, server, certs, delete_after="14d")
    assert main(["-c", str(config), "baseline", "isp"]) == 0
    assert "isp: 12 message(s) on the server marked as collected" in capsys.readouterr().out
    (session,) = server.sessions
    assert session.retrieved == []
    assert not any(line.startswith(b"RETR") for line in session.lines)
    assert len(stored_messages(tmp_path / "state.db")) == 12

"""Central-mailbox sinks end to end: Dovecot POP3 → popkeep → Dovecot IMAP / LMTP / Maildir."""

from __future__ import annotations

import imaplib
import ssl
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.state.sqlite import SQLiteStore
from popkeep.testing.mailgen import realistic_mailbox

from ..fixtures.dovecot import Dovecot
from .helpers import account_toml, digests, maildir_messages, save_config

pytestmark = pytest.mark.dovecot


def _config(
    dovecot: Dovecot, base: Path, pop_user: str, sinks: str, names: list[str],
    delete_after: str = "never",
) -> Path:
    account = account_toml(port=dovecot.pop3s_port, tls="implicit", ca_file=dovecot.ca_file,
                           user=pop_user, password=dovecot.password, sinks=names,
                           delete_after=delete_after)
    return save_config(base, f'[state]\npath = "{base / "state.db"}"\n{sinks}{account}')


def _imap_sink(dovecot: Dovecot, user: str, password: str | None = None) -> str:
    return f"""
[[sink]]
name = "central"
type = "imap"
host = "127.0.0.1"
port = {dovecot.imaps_port}
tls = "implicit"
ca_file = "{dovecot.ca_file}"
user = "{user}"
password = "{password or dovecot.password}"
folder = "Archive/ISP"
"""


def _maildir_sink(base: Path) -> str:
    return f'\n[[sink]]\nname = "home"\ntype = "maildir"\npath = "{base / "Maildir"}"\n'


def _imap_messages(dovecot: Dovecot, user: str, folder: str = "Archive.ISP") -> list[bytes]:
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL("127.0.0.1", dovecot.imaps_port, ssl_context=context) as client:
        client.login(user, dovecot.password)
        typ, _ = client.select(folder, readonly=True)
        assert typ == "OK"
        typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        if typ != "OK" or data == [None]:
            return []
        return [part[1] for part in data if isinstance(part, tuple)]


def _fetch(config: Path) -> int:
    return main(["-c", str(config), "fetch"])


def test_pop3_to_imap_300_messages_byte_for_byte(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path
) -> None:
    target = dovecot_user + "x"
    dovecot.add_user(target)
    dovecot.add_messages(dovecot_user, realistic_mailbox(300, seed=11))
    config = _config(dovecot, tmp_path, dovecot_user, _imap_sink(dovecot, target), ["central"])
    assert _fetch(config) == 0
    stored = _imap_messages(dovecot, target)
    assert len(stored) == 300
    assert digests(stored) == digests(dovecot.messages(dovecot_user))
    assert _fetch(config) == 0  # nothing new, nothing appended twice
    assert len(_imap_messages(dovecot, target)) == 300


def test_crash_between_append_and_commit_does_not_duplicate(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = dovecot_user + "x"
    dovecot.add_user(target)
    dovecot.add_messages(dovecot_user, realistic_mailbox(20, seed=12))
    config = _config(dovecot, tmp_path, dovecot_user, _imap_sink(dovecot, target), ["central"])

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed after APPEND, before the state commit")

    with monkeypatch.context() as patch:
        patch.setattr(SQLiteStore, "record_delivered", crash)
        assert _fetch(config) == 130  # interrupted: the CLI says "Aborted."
    assert len(_imap_messages(dovecot, target)) == 20  # APPENDed, but never recorded
    assert _fetch(config) == 0  # recovery: intents found in the folder, not appended again
    stored = _imap_messages(dovecot, target)
    assert len(stored) == 20
    assert digests(stored) == digests(dovecot.messages(dovecot_user))


def test_lmtp_delivery_reaches_the_target_mailbox(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path
) -> None:
    target = dovecot_user + "x"
    dovecot.add_user(target)
    dovecot.add_messages(dovecot_user, realistic_mailbox(25, seed=13))
    sink = (
        f'\n[[sink]]\nname = "lmtp"\ntype = "lmtp"\nhost = "127.0.0.1"\n'
        f'port = {dovecot.lmtp_port}\nrecipients = ["{target}"]\n'
    )
    source = dovecot.messages(dovecot_user)
    config = _config(dovecot, tmp_path, dovecot_user, sink, ["lmtp"], delete_after="0s")
    assert _fetch(config) == 0
    delivered = dovecot.messages(target)
    assert len(delivered) == 25
    # Dovecot's LMTP prepends Return-Path/Delivered-To/Received; the bytes after are ours.
    for original in source:
        assert sum(1 for data in delivered if data.endswith(original)) == 1
    assert dovecot.message_count(dovecot_user) == 0  # delete_after = 0s, LMTP accepted all


def test_failing_second_sink_blocks_deletion_and_does_not_duplicate_the_first(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = dovecot_user + "x"
    dovecot.add_user(target)
    dovecot.add_messages(dovecot_user, realistic_mailbox(30, seed=14))
    source = digests(dovecot.messages(dovecot_user))
    sinks = _maildir_sink(tmp_path) + _imap_sink(dovecot, target, password="wrong")
    config = _config(dovecot, tmp_path, dovecot_user, sinks, ["home", "central"], "0s")
    assert _fetch(config) == 77
    assert 'sink "central"' in capsys.readouterr().err
    assert digests(maildir_messages(tmp_path / "Maildir")) == source  # first sink delivered
    assert dovecot.message_count(dovecot_user) == 30  # nothing deleted on the POP server
    sinks = _maildir_sink(tmp_path) + _imap_sink(dovecot, target)
    config = _config(dovecot, tmp_path, dovecot_user, sinks, ["home", "central"], "0s")
    assert _fetch(config) == 0
    assert digests(maildir_messages(tmp_path / "Maildir")) == source  # not duplicated
    assert digests(_imap_messages(dovecot, target)) == source
    assert dovecot.message_count(dovecot_user) == 0  # both sinks hold it: now deleted

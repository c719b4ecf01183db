"""A notice into an IMAP sink (the test Dovecot), interrupted after the APPEND and
before its record: APPEND does not deduplicate, so only asking the sink first
(Sink.find: Message-ID + content hash) keeps the rerun from storing a second copy."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

from popkeep.clock import FakeClock

from ..fixtures.dovecot import Dovecot
from ..integration.helpers import account_toml, save_config
from ..integration.test_sinks_e2e import _imap_messages, _imap_sink
from .test_alerts import Service, _Crashing, fail_for

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_notice_interrupted_after_its_append_is_found_not_appended_again(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path
) -> None:
    target = dovecot_user + "alerts"
    dovecot.add_user(target)
    account = account_toml(port=_closed_port(), tls="none", user="taro", password="pw",
                           sinks=["central"])  # fmt: skip
    config = save_config(tmp_path, (
        f'[service]\nalert_after = "1h"\n[state]\npath = "{tmp_path / "state.db"}"\n'
        + _imap_sink(dovecot, target) + account
    ))  # fmt: skip
    clock = FakeClock(T0)
    service = Service(config, clock)
    crash = _Crashing(service.app.store)
    try:
        fail_for(service, clock, 2)  # raised, APPENDed; its record "crashed"
        assert crash.calls == 1 and len(_imap_messages(dovecot, target)) == 1
        [owed] = service.app.store.open_alerts("isp")
        assert owed.raised_sent_at is None
        fail_for(service, clock, 1)  # the rerun asks the sink first
        assert crash.calls == 2
        [told] = service.app.store.open_alerts("isp")
        assert told.raised_sent_at is not None
    finally:
        service.close()
    [notice] = _imap_messages(dovecot, target)
    assert b"X-Popkeep-Alert: failing; raised" in notice

"""The IMAP sink when one message of a batch is refused, or a reply is lost after the
server committed: receipts kept, the rest delivered, nothing stored twice.

Dovecot stores; :mod:`tests.sinks.imap_front` plays the size-limited provider and
the reply lost on the way back.
"""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli import main
from popkeep.config.schema import Connection
from popkeep.config.secrets import SecretSource
from popkeep.config.sink_types import ImapSinkConfig
from popkeep.errors import MessageRefused
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.imap import ImapSink
from popkeep.spool import SpooledMessage
from popkeep.testing.mailgen import realistic_mailbox

from ..fixtures.dovecot import Dovecot
from ..integration.helpers import account_toml, digests, save_config
from .imap_front import ImapFront

pytestmark = pytest.mark.dovecot

LIMIT = 64_000  #: the front's APPEND size limit


def big_message(n: int) -> bytes:
    head = f"From: a@example.org\r\nMessage-ID: <big{n}@example.org>\r\nSubject: big\r\n\r\n"
    return head.encode() + b"0123456789abcdef" * (LIMIT // 8) + b"\r\n"


def small_messages(count: int, seed: int) -> list[bytes]:
    return [m for m in realistic_mailbox(count * 3, seed=seed, size_profile="small")
            if len(m) < LIMIT][:count]


def make(data: bytes) -> Delivery:
    spooled = SpooledMessage.from_bytes(data)
    return Delivery("isp", "uid", delivery_key("isp", spooled.sha256), spooled)


@pytest.fixture
def target(dovecot: Dovecot, dovecot_user: str) -> str:
    """A second, empty mailbox: where the IMAP sink stores."""
    user = dovecot_user + "x"
    dovecot.add_user(user)
    return user


@pytest.fixture
def front(dovecot: Dovecot) -> Iterator[ImapFront]:
    with ImapFront((dovecot.host, dovecot.imap_port), max_append=LIMIT) as relay:
        yield relay


def stored(dovecot: Dovecot, user: str, folder: str = "INBOX") -> list[bytes]:
    """The collected messages in ``folder`` (not the alert notice a refused message
    raises, docs/alerts.md)."""
    return [m for m in _folder(dovecot, user, folder) if b"\r\nX-Popkeep-Alert: " not in m]


def _folder(dovecot: Dovecot, user: str, folder: str) -> list[bytes]:
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=context) as client:
        client.login(user, dovecot.password)
        typ, _ = client.select(folder, readonly=True)
        assert typ == "OK"
        typ, data = client.fetch("1:*", "(BODY.PEEK[])")
        if typ != "OK" or data == [None]:
            return []
        return [part[1] for part in data if isinstance(part, tuple)]


def sink_config(dovecot: Dovecot, front: ImapFront, user: str, **kw: Any) -> ImapSinkConfig:
    server = Connection("127.0.0.1", front.port, "none", user=user,
                        secret=SecretSource("literal", dovecot.password))
    return ImapSinkConfig(name="central", server=server, folder="INBOX", **kw)


def sink_toml(dovecot: Dovecot, front: ImapFront, user: str) -> str:
    return f"""
[[sink]]
name = "central"
type = "imap"
host = "127.0.0.1"
port = {front.port}
tls = "none"
user = "{user}"
password = "{dovecot.password}"
folder = "INBOX"
"""


async def deliver(sink: ImapSink, batch: list[Delivery]) -> list[str]:
    await sink.open()
    try:
        return [r.ref for r in await sink.deliver(batch)]
    finally:
        await sink.close()


def test_a_refused_message_carries_the_receipts_of_those_before_it(
    dovecot: Dovecot, target: str, front: ImapFront
) -> None:
    import asyncio

    batch = [make(m) for m in small_messages(2, seed=31)] + [make(big_message(1))]
    with pytest.raises(MessageRefused, match="TOOBIG") as info:
        asyncio.run(deliver(ImapSink(sink_config(dovecot, front, target)), batch))
    assert len(info.value.delivered) == 2  # the two APPENDed first, in order
    assert len(stored(dovecot, target)) == 2


def test_a_refused_message_in_a_batch_does_not_duplicate_block_or_stop_the_rest(
    dovecot: Dovecot, dovecot_user: str, target: str, front: ImapFront, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    small = small_messages(6, seed=32)
    big = big_message(2)
    dovecot.add_messages(dovecot_user, [*small[:3], big, *small[3:]])
    account = account_toml(port=dovecot.pop3s_port, tls="implicit", ca_file=dovecot.ca_file,
                           user=dovecot_user, password=dovecot.password, delete_after="0s")
    config = save_config(tmp_path, f'[state]\npath = "{tmp_path / "state.db"}"\n'
                         + sink_toml(dovecot, front, target) + account)
    for run in range(3):
        capsys.readouterr()
        assert main(["-c", str(config), "fetch", "--json"]) == 0, f"run {run}"
        (result,) = json.loads(capsys.readouterr().out)["accounts"]
        # Every message but the refused one, exactly once, whatever the run.
        assert digests(stored(dovecot, target)) == digests(small), f"run {run}"
        # The others were deleted at the provider; the refused one stays.
        assert digests(dovecot.messages(dovecot_user)) == digests([big]), f"run {run}"
        # Reported on every run; offered to the sink once only (remembered).
        assert any("refused by sink central" in w and "TOOBIG" in w and "popkeep retry isp" in w
                   for w in result["warnings"]), result
        assert front.refused == 1, f"run {run}"


def test_popkeep_retry_offers_a_refused_message_again(
    dovecot: Dovecot, dovecot_user: str, target: str, front: ImapFront, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    small, big = small_messages(2, seed=35), big_message(3)
    dovecot.add_messages(dovecot_user, [small[0], big, small[1]])
    account = account_toml(port=dovecot.pop3s_port, tls="implicit", ca_file=dovecot.ca_file,
                           user=dovecot_user, password=dovecot.password, delete_after="0s")
    config = save_config(tmp_path, f'[state]\npath = "{tmp_path / "state.db"}"\n'
                         + sink_toml(dovecot, front, target) + account)
    assert main(["-c", str(config), "fetch"]) == 0
    assert main(["-c", str(config), "fetch"]) == 0
    assert front.refused == 1
    capsys.readouterr()
    assert main(["-c", str(config), "retry", "isp"]) == 0
    assert "sink central will be tried again" in capsys.readouterr().out
    front.max_append = None  # the provider raised its limit
    assert main(["-c", str(config), "fetch"]) == 0
    assert digests(stored(dovecot, target)) == digests([*small, big])
    assert dovecot.message_count(dovecot_user) == 0  # now delivered, so deleted


def test_a_reply_lost_after_the_server_committed_is_looked_for_not_resent(
    dovecot: Dovecot, target: str, front: ImapFront
) -> None:
    import asyncio

    messages = small_messages(3, seed=33)
    front.swallow_next_append_reply()
    sink = ImapSink(sink_config(dovecot, front, target, timeout=1.0))
    refs = asyncio.run(deliver(sink, [make(m) for m in messages]))
    assert front.swallowed.is_set() and len(refs) == 3
    assert front.appends == 3  # the first one was found by a search, not sent again
    assert digests(stored(dovecot, target)) == digests(messages)


def test_a_lost_reply_and_no_reconnect_leaves_the_intent_for_the_next_run(
    dovecot: Dovecot, dovecot_user: str, target: str, front: ImapFront, tmp_path: Path
) -> None:
    messages = small_messages(4, seed=34)
    dovecot.add_messages(dovecot_user, messages)
    account = account_toml(port=dovecot.pop3s_port, tls="implicit", ca_file=dovecot.ca_file,
                           user=dovecot_user, password=dovecot.password, delete_after="0s")
    sink = sink_toml(dovecot, front, target) + "timeout = 1.0\n"
    config = save_config(tmp_path, f'[state]\npath = "{tmp_path / "state.db"}"\n' + sink + account)
    front.swallow_next_append_reply(then_refuse=True)
    assert main(["-c", str(config), "fetch"]) == 75  # the link is down: retried next run
    assert front.swallowed.is_set()
    assert len(stored(dovecot, target)) == 1  # committed, but the client never heard it
    assert dovecot.message_count(dovecot_user) == 4  # nothing deleted
    front.reopen()
    assert main(["-c", str(config), "fetch"]) == 0
    assert digests(stored(dovecot, target)) == digests(messages)  # each exactly once
    assert dovecot.message_count(dovecot_user) == 0

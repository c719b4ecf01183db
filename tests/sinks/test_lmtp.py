"""The LMTP sink: real Dovecot LMTP (TCP and unix socket), per-recipient replies (RFC 2033)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from popkeep.config.schema import Connection
from popkeep.config.sink_types import LmtpSinkConfig, lmtp_sink
from popkeep.errors import ConfigError, DeliveryError, DeliveryRefused, MessageRefused
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.lmtp import LmtpSink, dot_stuffed
from popkeep.spool import SpooledMessage

from ..fixtures.lmtp import LmtpSession, serving


def make(n: int, extra: bytes = b"") -> Delivery:
    data = (
        f"From: sender@example.org\r\nTo: alice@localhost\r\nSubject: lmtp {n}\r\n"
        f"Message-ID: <lmtp{n}@example.org>\r\n\r\n"
    ).encode() + b".leading dot\r\n..two dots\r\nbody\r\n" + extra
    message = SpooledMessage.from_bytes(data)
    return Delivery("isp", f"u{n}", delivery_key("isp", message.sha256), message)


def lf_body(delivery: Delivery) -> bytes:
    return delivery.message.read_all().replace(b"\r\n", b"\n")


def run(sink: LmtpSink, batch: list[Delivery]) -> list[str]:
    async def go() -> list[str]:
        await sink.open()
        try:
            return [r.ref for r in await sink.deliver(batch)]
        finally:
            await sink.close()

    return asyncio.run(go())


def test_dot_stuffing_table() -> None:
    out = b"".join(dot_stuffed([b"a\r\n.b\r", b"\n..c\nlast"]))
    assert out == b"a\r\n..b\r\n...c\r\nlast\r\n.\r\n"


@pytest.mark.dovecot
def test_delivers_to_dovecot_over_tcp(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    batch = [make(i) for i in range(5)]
    config = LmtpSinkConfig(name="lmtp", recipients=(dovecot_user,),
                            server=Connection(dovecot.host, dovecot.lmtp_port, "none"))
    assert run(LmtpSink(config), batch) == [dovecot_user] * 5
    stored = dovecot.messages(dovecot_user)
    assert len(stored) == 5
    # Dovecot prepends Return-Path / Delivered-To / Received; the rest is ours, intact.
    # (File order in the Maildir is not delivery order: match each body to one file.)
    for delivery in batch:
        assert sum(1 for data in stored if data.endswith(lf_body(delivery))) == 1


@pytest.mark.dovecot
def test_unix_socket_and_two_recipients(dovecot, dovecot_user) -> None:  # type: ignore[no-untyped-def]
    second = dovecot_user + "b"
    dovecot.add_user(second)
    socket_path = dovecot.base_dir / "run" / "lmtp"
    config = lmtp_sink(
        {"type": "lmtp", "name": "l", "socket": str(socket_path),
         "recipients": [dovecot_user, second], "trace_headers": True},
        "c: sink",
    )
    delivery = make(1)
    assert run(LmtpSink(config), [delivery]) == [f"{dovecot_user},{second}"]
    for user in (dovecot_user, second):
        (data,) = dovecot.messages(user)
        assert data.endswith(lf_body(delivery))
        assert f"Received: by popkeep (sink l) id {delivery.key}; ".encode() in data


@pytest.mark.dovecot
def test_unknown_user_is_refused(dovecot) -> None:  # type: ignore[no-untyped-def]
    config = LmtpSinkConfig(name="lmtp", recipients=("nosuchuser",),
                            server=Connection(dovecot.host, dovecot.lmtp_port, "none"))
    with pytest.raises(DeliveryRefused, match="nosuchuser: 550"):
        run(LmtpSink(config), [make(1)])


def test_connection_refused_is_temporary(tmp_path: Path) -> None:
    config = LmtpSinkConfig(name="lmtp", recipients=("a",), socket=tmp_path / "none")
    with pytest.raises(DeliveryError) as info:
        run(LmtpSink(config), [make(1)])
    assert type(info.value) is DeliveryError


class Scripted(LmtpSession):
    """Replies Dovecot will not give on demand."""

    rcpt_codes: ClassVar[dict[str, bytes]] = {}
    data_codes: ClassVar[list[bytes]] = []
    #: per DATA, in order, before falling back to data_codes
    data_script: ClassVar[list[list[bytes]]] = []

    def rcpt(self, who: str) -> bytes:
        return self.rcpt_codes.get(who, b"250 ok")

    def replies(self) -> bytes:
        codes = self.data_script.pop(0) if self.data_script else self.data_codes
        return b"".join(c + b"\r\n" for c in codes)


@pytest.fixture
def scripted() -> Iterator[tuple[str, int]]:
    Scripted.received = []
    Scripted.data_script = []
    with serving(Scripted) as port:
        yield "127.0.0.1", port


def scripted_sink(address: tuple[str, int]) -> LmtpSink:
    return LmtpSink(LmtpSinkConfig(name="s", recipients=("a@x", "b@x", "c@x"),
                                   server=Connection(address[0], address[1], "none")))


def test_one_reply_per_accepted_recipient(scripted: tuple[str, int]) -> None:
    Scripted.rcpt_codes = {}
    Scripted.data_codes = [b"250 2.0.0 a ok", b"250 2.0.0 b ok", b"250 2.0.0 c ok"]
    assert run(scripted_sink(scripted), [make(1), make(2)]) == ["a@x,b@x,c@x"] * 2
    assert Scripted.received[0].startswith(b"From: sender@example.org\r\n")
    assert b"\r\n..leading dot\r\n...two dots\r\n" in Scripted.received[0]


def test_temporary_failure_of_one_recipient_after_data(scripted: tuple[str, int]) -> None:
    Scripted.rcpt_codes = {}
    Scripted.data_codes = [b"250 2.0.0 a ok", b"452 4.2.2 b over quota", b"250 2.0.0 c ok"]
    with pytest.raises(DeliveryError, match="b@x: 452") as info:
        run(scripted_sink(scripted), [make(1)])
    assert type(info.value) is DeliveryError


def test_permanent_rcpt_failure_and_ok_others(scripted: tuple[str, int]) -> None:
    Scripted.rcpt_codes = {"b@x": b"550 5.1.1 no such user"}
    Scripted.data_codes = [b"250 2.0.0 a ok", b"250 2.0.0 c ok"]  # only for accepted ones
    with pytest.raises(DeliveryRefused, match="b@x: 550"):
        run(scripted_sink(scripted), [make(1)])


def test_mixed_4xx_and_5xx_is_temporary(scripted: tuple[str, int]) -> None:
    Scripted.rcpt_codes = {"a@x": b"550 5.1.1 gone", "c@x": b"451 4.3.0 later"}
    Scripted.data_codes = [b"250 2.0.0 b ok"]
    with pytest.raises(DeliveryError) as info:
        run(scripted_sink(scripted), [make(1)])
    assert type(info.value) is DeliveryError


def test_a_message_refused_after_data_carries_the_receipts_before_it(
    scripted: tuple[str, int]
) -> None:
    Scripted.rcpt_codes = {}
    Scripted.data_codes = [b"250 2.0.0 ok"] * 3
    Scripted.data_script = [[b"250 2.0.0 ok"] * 3, [b"552 5.3.4 message too big"] * 3]
    with pytest.raises(MessageRefused, match="552") as info:
        run(scripted_sink(scripted), [make(1), make(2), make(3)])
    assert [r.ref for r in info.value.delivered] == ["a@x,b@x,c@x"]
    assert run(scripted_sink(scripted), [make(3)]) == ["a@x,b@x,c@x"]  # the session recovers


def test_config_needs_exactly_one_target() -> None:
    with pytest.raises(ConfigError, match="exactly one of host, socket"):
        lmtp_sink({"name": "l", "recipients": ["a"]}, "c: sink")
    with pytest.raises(ConfigError, match="exactly one of host, socket"):
        lmtp_sink({"name": "l", "recipients": ["a"], "host": "h", "socket": "/s"}, "c: sink")

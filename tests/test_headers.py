"""popkeep.headers: the header digest that tells a reused UIDL's new message apart."""

from __future__ import annotations

from popkeep.headers import HEADER_LIMIT, header_digest, header_of

MESSAGE = (b"Received: from mx by pop\r\nFrom: Taro <t@x>\r\nTo: h@x\r\nSubject: hello\r\n"
           b"Date: Sat, 5 Dec 2026 10:00:00 +0000\r\nMessage-ID: <a@x>\r\n\r\nbody\r\n")


def test_header_of_stops_at_the_blank_line_across_chunks() -> None:
    chunks = [MESSAGE[i : i + 7] for i in range(0, len(MESSAGE), 7)]
    assert header_of(chunks) == MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n"
    assert header_of([b"Subject: x\n\nbody\n"]) == b"Subject: x\n"


def test_header_of_is_bounded() -> None:
    assert len(header_of([b"X: " + b"y" * (HEADER_LIMIT * 2)])) == HEADER_LIMIT


def test_digest_ignores_line_endings_folding_and_fields_a_server_adds() -> None:
    digest = header_digest(header_of([MESSAGE]))
    lf = MESSAGE.replace(b"\r\n", b"\n").replace(b"Subject: hello", b"Subject:\n  hello")
    added = MESSAGE.replace(b"\r\n\r\n", b"\r\nStatus: RO\r\nX-UIDL: 17\r\n\r\n")
    assert header_digest(header_of([lf])) == digest
    assert header_digest(header_of([added])) == digest


def test_digest_tells_messages_apart_by_their_identifying_fields() -> None:
    digest = header_digest(header_of([MESSAGE]))
    for old, new in [(b"<a@x>", b"<b@x>"), (b"10:00:00", b"10:00:01"), (b"hello", b"hellO")]:
        assert header_digest(header_of([MESSAGE.replace(old, new)])) != digest
    assert header_digest(b"X-Only: 1\r\n") != header_digest(b"X-Only: 2\r\n")

"""popkeep.headers: the header digest that tells a reused UIDL's new message apart."""

from __future__ import annotations

from popkeep.headers import HEADER_LIMIT, IDENTITY_FIELDS, header_digest, header_of

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


def _header_of_before(chunks: list[bytes], limit: int = HEADER_LIMIT) -> bytes:
    """header_of as first written (before it searched the first chunk in place)."""
    buf = bytearray()
    for chunk in chunks:
        start = max(0, len(buf) - 3)
        buf += chunk[: limit + 4 - len(buf)]
        for end in (b"\r\n\r\n", b"\n\n"):
            cut = buf.find(end, start)
            if cut >= 0:
                return bytes(buf[: cut + len(end) // 2])[:limit]
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def _digest_before(header: bytes) -> str:
    """header_digest as first written (a regex trying every octet)."""
    import hashlib
    import re

    picked = []
    for field in re.split(rb"\r?\n(?![ \t])", header):
        name, colon, _ = field.partition(b":")
        if colon and name.strip().lower() in IDENTITY_FIELDS:
            picked.append(field)
    text = b"\n".join(b" ".join(f.split()) for f in picked or [header])
    return hashlib.sha256(text).hexdigest()


ODD_HEADERS = [
    MESSAGE,
    MESSAGE.replace(b"\r\n", b"\n"),
    b"Subject: lf header\nFrom: a\n\nbody with a CRLF pair\r\n\r\nlater\n",  # CRLF CRLF wins
    b"Subject: no end at all\r\nFrom: a\r\n",
    b" Subject: leading space\r\n\tfolded: on\r\nFrom: x\r\n\r\n",
    b"Subject\r\n : name folded before its colon\r\nTo: y\r\n\r\n",
    b"From: a\r\r\nTo: b\r\n\r\r\n\r\nbody",
    b"From: lone CR\rTo: b\n\r\n\r\nbody",
    b"\r\n\r\nbody first",
    b"\n\nbody first",
    b"",
    b"To: " + b"y" * (HEADER_LIMIT + 10) + b"\r\n\r\n",
    b"To: " + b"y" * (HEADER_LIMIT - 6) + b"\r\n\r\n",
    b"To: " + b"y" * (HEADER_LIMIT - 6) + b"\n\n",
]


def test_header_and_digest_are_those_recorded_by_earlier_versions() -> None:
    # Digests are stored and compared across runs: the faster code must give the
    # same header and digest as the first version, however a message is chunked.
    from popkeep.testing import mailgen

    messages = [*ODD_HEADERS, *mailgen.realistic_mailbox(60, seed=5)]
    messages += [m.replace(b"\r\n", b"\n") for m in messages]
    for message in messages:
        small = (1, 2, 3, 5, 64) if len(message) < 1 << 16 else ()
        for size in (*small, 1 << 16, len(message) or 1):
            chunks = [message[i : i + size] for i in range(0, len(message), size)]
            header = header_of(chunks)
            assert header == _header_of_before(chunks), (message[:40], size)
            assert header_digest(header) == _digest_before(header), message[:40]

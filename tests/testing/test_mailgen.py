"""The deterministic mail generators: shapes, sizes, charsets, speed."""

from __future__ import annotations

import base64
import email
import email.policy
import time
from email.message import EmailMessage

import pytest

from popkeep.testing.mailgen import big_message, crlf, demo_mailbox, lf, realistic_mailbox


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _crlf_only(raw: bytes) -> bool:
    return raw.endswith(b"\r\n") and b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in (
        raw.replace(b"\r\n", b""))


@pytest.fixture(scope="module")
def demo() -> list[bytes]:
    return demo_mailbox(0)


def test_demo_is_deterministic_under_a_seed(demo: list[bytes]) -> None:
    assert demo_mailbox(0) == demo
    assert demo_mailbox(1) != demo


def test_demo_messages_are_crlf_and_about_twelve(demo: list[bytes]) -> None:
    assert 10 <= len(demo) <= 14
    assert all(_crlf_only(m) for m in demo)


def test_demo_has_a_message_of_several_megabytes(demo: list[bytes]) -> None:
    assert max(len(m) for m in demo) > 3_000_000
    assert sum(len(m) > 1_000_000 for m in demo) == 1


def test_demo_exercises_dot_stuffing(demo: list[bytes]) -> None:
    dotted = [m for m in demo if b"\r\n.\r\n" in m]
    assert dotted, "one body must hold a line with a single dot"
    assert b"\r\n..and" in dotted[0] and b"\r\n.this" in dotted[0]


def test_iso_2022_jp_message_decodes(demo: list[bytes]) -> None:
    raw = next(m for m in demo if b"charset=ISO-2022-JP\r\n" in m)
    assert b"=?ISO-2022-JP?B?" in raw
    assert all(byte < 0x80 for byte in raw), "ISO-2022-JP is 7bit"
    message = _parse(raw)
    assert message["Subject"] == "請求書送付のご案内"
    assert "鈴木 一郎" in str(message["From"])
    assert "今月の請求書をお送りします。" in message.get_content()


def test_shift_jis_and_utf8_messages_decode(demo: list[bytes]) -> None:
    sjis = _parse(next(m for m in demo if b"charset=Shift_JIS" in m))
    assert "古いメールソフト" in sjis.get_content()
    b64 = _parse(next(m for m in demo if b"Content-Transfer-Encoding: base64\r\n\r\n" in m
                      and b"charset=utf-8" in m))
    assert "Grüße" in str(b64["Subject"]) and "Köln" in b64.get_content()


def test_attachments_decode_to_their_magic(demo: list[bytes]) -> None:
    payloads = {}
    for raw in demo:
        for part in _parse(raw).iter_attachments():
            assert isinstance(part, EmailMessage)
            payloads[part.get_content_type()] = part.get_payload(decode=True)
    assert payloads["image/png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert payloads["application/pdf"].startswith(b"%PDF-1.4")
    assert len(payloads["video/mp4"]) == 3 * 1024 * 1024


def test_demo_headers_use_example_domains_only(demo: list[bytes]) -> None:
    for raw in demo:
        message = _parse(raw)
        assert str(message["From"]).split("@")[-1].rstrip(">").endswith(("example.jp",
                                                                          "example.com"))
        assert message["Message-ID"] and message["Date"].datetime is not None


def test_realistic_mailbox_is_deterministic() -> None:
    assert list(realistic_mailbox(50, 7)) == list(realistic_mailbox(50, 7))
    assert list(realistic_mailbox(50, 7)) != list(realistic_mailbox(50, 8))


def test_realistic_mailbox_sizes_and_speed() -> None:
    started = time.perf_counter()
    sizes = [len(m) for m in realistic_mailbox(2000, 3)]
    elapsed = time.perf_counter() - started
    assert len(sizes) == 2000
    assert 20_000 <= sum(sizes) / len(sizes) <= 45_000  # ≈ 30 KB on average
    small = sum(1_500 <= s <= 22_000 for s in sizes)
    large = sum(100_000 <= s <= 2_100_000 for s in sizes)
    assert small >= 0.9 * len(sizes)
    assert 0.01 * len(sizes) <= large <= 0.06 * len(sizes)
    assert elapsed < 4.0, f"2,000 messages took {elapsed:.2f}s (budget 2s)"


def test_realistic_messages_parse_and_mix_charsets() -> None:
    messages = list(realistic_mailbox(300, 11))
    assert all(_crlf_only(m) for m in messages)
    assert any(b"=?ISO-2022-JP?B?" in m for m in messages)
    assert any(b"=?UTF-8?B?" in m for m in messages)
    assert any(b"multipart/mixed" in m for m in messages)
    jis = _parse(next(m for m in messages if b"text/plain; charset=iso-2022-jp" in m))
    body = jis.get_body(("plain",))
    assert body is not None and "。" in body.get_content()


def test_small_profile_has_no_large_messages() -> None:
    assert max(len(m) for m in realistic_mailbox(500, 1, size_profile="small")) < 25_000


@pytest.mark.parametrize("size", [1024, 1025, 1026, 1027, 1028, 1029, 1030, 4_321, 1_000_003])
def test_big_message_has_exact_size_and_valid_base64(size: int) -> None:
    raw = b"".join(big_message(size, seed=5))
    assert len(raw) == size
    assert _crlf_only(raw)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = body.split(b"\r\n")[:-1]
    assert all(len(line) == 76 for line in lines[:-1]) and 4 <= len(lines[-1]) <= 76
    base64.b64decode(b"".join(lines), validate=True)
    assert _parse(head + b"\r\n\r\n")["Content-Transfer-Encoding"] == "base64"


def test_big_message_streams_in_bounded_chunks() -> None:
    size = 50 * 1024 * 1024
    total = 0
    largest = 0
    for chunk in big_message(size, seed=1):
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == size
    assert largest <= 128 * 1024
    first = next(iter(big_message(size, seed=1)))
    assert first == next(iter(big_message(size, seed=1)))


def test_crlf_and_lf_convert_both_ways() -> None:
    assert crlf(b"a\nb\r\nc\n") == b"a\r\nb\r\nc\r\n"
    assert lf(b"a\r\nb\r\n") == b"a\nb\n"
    assert crlf(lf(b"x\r\ny\r\n")) == b"x\r\ny\r\n"

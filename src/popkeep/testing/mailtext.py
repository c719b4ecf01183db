"""Building blocks for generated mail: sample text, senders, header encoding.

Owns the vocabulary (English and Japanese sentences, senders on example.jp /
example.com, subjects) and the small encoders the generators in
:mod:`popkeep.testing.mailgen` assemble messages from. Pure: no I/O, no global
random state (every random choice takes an explicit ``random.Random``).
Japanese text stays inside JIS X 0208 so ISO-2022-JP and Shift_JIS encode it.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

CRLF = b"\r\n"
_JST = timezone(timedelta(hours=9))
_EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=_JST)

LineMaker = Callable[[random.Random], str]

JAPANESE = (
    "お世話になっております。",
    "来週の打ち合わせの件でご連絡いたしました。",
    "資料を添付しましたので、ご確認ください。",
    "何かご不明な点がございましたら、お気軽にお問い合わせください。",
    "今月の請求書をお送りします。",
    "明日の会議は午後三時からに変更になりました。",
    "よろしくお願いいたします。",
    "新しいメールアドレスに変更しました。",
    "先日はありがとうございました。",
    "発送の準備が整いましたのでお知らせします。",
    "ポイントの有効期限が近づいています。",
    "東京は今日も雨でした。",
)

ENGLISH = (
    "the", "quarterly", "report", "is", "attached", "please", "review", "before",
    "Friday", "meeting", "schedule", "changed", "to", "three", "o'clock", "thanks",
    "for", "your", "order", "shipping", "confirmation", "invoice", "account", "password",
    "reminder", "newsletter", "weekend", "project", "deadline", "and", "of", "we",
)

SENDERS_BY_CHARSET: dict[str, tuple[tuple[str, str], ...]] = {
    "us-ascii": (
        ("Alice Smith", "alice@example.com"),
        ("Bob Jones", "bob@example.com"),
        ("Shop Notifications", "no-reply@shop.example.com"),
    ),
    "utf-8": (
        ("山田 太郎", "taro@example.jp"),
        ("Zoë Müller", "zoe@example.com"),
        ("佐藤 花子", "hanako@example.jp"),
    ),
    "iso-2022-jp": (
        ("鈴木 一郎", "ichiro@example.jp"),
        ("株式会社サンプル", "info@sample.example.jp"),
    ),
}

_SUBJECTS_ASCII = (
    "Quarterly report", "Re: Meeting on Friday", "Your order has shipped",
    "Invoice for January", "Weekend plans?", "Project deadline reminder",
)
_SUBJECTS_JA = (
    "打ち合わせの件", "Re: 来週の予定について", "ご注文ありがとうございます",
    "請求書送付のご案内", "ポイント有効期限のお知らせ", "資料の送付",
)

ATTACHMENT_NAMES = (
    ("report.pdf", "application/pdf"),
    ("photo.jpg", "image/jpeg"),
    ("data.zip", "application/zip"),
    ("scan.png", "image/png"),
)


def subjects(charset: str) -> tuple[str, ...]:
    """Subjects suited to ``charset`` (Japanese for the Japanese/UTF-8 pools)."""
    return _SUBJECTS_ASCII if charset == "us-ascii" else _SUBJECTS_JA


def english_line(rng: random.Random) -> str:
    """One line of English-looking words, at most 72 characters."""
    words: list[str] = []
    length = 0
    target = rng.randrange(20, 72)
    while length < target:
        word = rng.choice(ENGLISH)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:72]


def japanese_line(rng: random.Random) -> str:
    """One line of one or two Japanese sentences."""
    return "".join(rng.choice(JAPANESE) for _ in range(rng.randrange(1, 3)))


def encode_words(text: str, charset: str, *, limit: int = 60) -> str:
    """Encode ``text`` as RFC 2047 'B' encoded-words, folded with CRLF SP.

    ASCII text is returned unchanged. Each encoded word is self-contained (an
    ISO-2022-JP word returns to ASCII before its end, RFC 1468) and at most
    ``limit`` characters long (RFC 2047 §2 allows 75).
    """
    if text.isascii():
        return text
    words: list[str] = []
    piece = ""
    for char in text:
        if piece and len(_word(piece + char, charset)) > limit:
            words.append(_word(piece, charset))
            piece = char
        else:
            piece += char
    words.append(_word(piece, charset))
    return "\r\n ".join(words)


def _word(text: str, charset: str) -> str:
    payload = base64.b64encode(text.encode(charset)).decode("ascii")
    return f"=?{charset.upper()}?B?{payload}?="


def address(display: str, mailbox: str, charset: str = "utf-8") -> str:
    """A From/To value, with an RFC 2047 display name when it is not ASCII."""
    return f"{encode_words(display, charset)} <{mailbox}>"


def b64_lines(data: bytes) -> bytes:
    """Base64 of ``data`` in CRLF lines of 76 characters (RFC 2045 §6.8)."""
    return base64.encodebytes(data).replace(b"\n", CRLF)


def header_block(fields: list[tuple[str, str]]) -> bytes:
    """Render header fields (values ASCII or encoded-words) and the blank line."""
    return b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in fields) + CRLF


def envelope(
    rng: random.Random, index: int, sender: str, subject: str, *, charset: str = "utf-8"
) -> list[tuple[str, str]]:
    """The usual header fields of message ``index``; dates increase with ``index``.

    The subject is field number 5 so callers may replace it with a pre-encoded one.
    """
    date = _EPOCH + timedelta(minutes=37 * index + rng.randrange(30))
    mailbox = sender.rsplit("<", 1)[-1].rstrip(">")
    domain = mailbox.rsplit("@", 1)[-1]
    stamp = date.strftime("%Y%m%d%H%M%S")
    return [
        ("Return-Path", f"<{mailbox}>"),
        ("Received", f"from mx{rng.randrange(1, 9)}.{domain} by pop.example.com;\r\n"
                     f"\t{format_datetime(date)}"),
        ("Date", format_datetime(date)),
        ("From", sender),
        ("To", "Demo User <demo@example.com>"),
        ("Subject", encode_words(subject, charset)),
        ("Message-ID", f"<{stamp}.{rng.getrandbits(40):010x}@{domain}>"),
        ("MIME-Version", "1.0"),
    ]


def part_header(
    boundary: str, content_type: str, transfer: str, disposition: str | None = None
) -> bytes:
    """The delimiter line and header of one MIME body part (RFC 2046 §5.1.1)."""
    lines = [f"--{boundary}", f"Content-Type: {content_type}",
             f"Content-Transfer-Encoding: {transfer}"]
    if disposition:
        lines.append(f"Content-Disposition: {disposition}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def multipart(
    fields: list[tuple[str, str]], boundary: str, parts: list[tuple[bytes, bytes]],
    subtype: str = "mixed",
) -> bytes:
    """A whole multipart message from (part header, part body) pairs.

    Each part body must end with CRLF; the close delimiter ends the message.
    """
    fields = [*fields, ("Content-Type", f'multipart/{subtype}; boundary="{boundary}"')]
    body = b"".join(head + content for head, content in parts)
    return (header_block(fields) + b"This is a multi-part message in MIME format.\r\n"
            + body + f"--{boundary}--\r\n".encode("ascii"))

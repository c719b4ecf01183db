"""The twelve hand-shaped messages of the demo mailbox.

Each builder takes ``(rng, index)`` and returns one CRLF message; together they
cover the charsets and MIME shapes a Japanese/English user really receives, a
3 MB attachment, and the byte-stuffing traps of RFC 1939 §3 (lines starting
with "." and a body line holding only "."). Pure; used by
:func:`popkeep.testing.mailgen.demo_mailbox`.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

from popkeep.testing.mailtext import (
    CRLF,
    address,
    b64_lines,
    envelope,
    header_block,
    multipart,
    part_header,
)

Builder = Callable[[random.Random, int], bytes]


def _crlf_text(text: str, charset: str) -> bytes:
    return text.replace("\n", "\r\n").encode(charset)


def _single(fields: list[tuple[str, str]], ctype: str, cte: str, body: bytes) -> bytes:
    fields = [*fields, ("Content-Type", ctype), ("Content-Transfer-Encoding", cte)]
    return header_block(fields) + body


def plain_ascii(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Alice Smith <alice@example.com>", "Welcome to popkeep")
    body = ("Hello,\n\nthis is the first message of the demo mailbox.\n"
            "popkeep copied it from the POP3 server into your central mailbox.\n\n-- \nAlice\n")
    return _single(fields, "text/plain; charset=us-ascii", "7bit", _crlf_text(body, "ascii"))


def utf8_8bit(rng: random.Random, index: int) -> bytes:
    sender = address("山田 太郎", "taro@example.jp")
    fields = envelope(rng, index, sender, "打ち合わせの件（来週火曜日）")
    body = "お世話になっております。\n来週火曜日の打ち合わせの件でご連絡いたしました。\n\n山田\n"
    return _single(fields, "text/plain; charset=utf-8", "8bit", _crlf_text(body, "utf-8"))


def utf8_base64(rng: random.Random, index: int) -> bytes:
    sender = address("Zoë Müller", "zoe@example.com")
    fields = envelope(rng, index, sender, "Café ☕ und Grüße aus Köln")
    body = "Liebe Grüße aus Köln! Ça va? ☕ 🍰\nSchöne Woche,\nZoë\n"
    return _single(fields, "text/plain; charset=utf-8", "base64",
                   b64_lines(_crlf_text(body, "utf-8")))


def iso2022jp(rng: random.Random, index: int) -> bytes:
    sender = address("鈴木 一郎", "ichiro@example.jp", "iso-2022-jp")
    fields = envelope(rng, index, sender, "請求書送付のご案内", charset="iso-2022-jp")
    body = ("いつもお世話になっております。\n今月の請求書をお送りします。\n"
            "ご確認のほど、よろしくお願いいたします。\n\n株式会社サンプル 鈴木\n")
    # RFC 1468: each line returns to ASCII before CRLF; the codec does this per call.
    lines = b"".join(line.encode("iso2022_jp") + CRLF for line in body.splitlines())
    return _single(fields, "text/plain; charset=ISO-2022-JP", "7bit", lines)


def shift_jis(rng: random.Random, index: int) -> bytes:
    sender = address("佐藤 花子", "hanako@example.jp", "shift_jis")
    fields = envelope(rng, index, sender, "古いメールソフトからの連絡", charset="shift_jis")
    body = "こんにちは。\n古いメールソフトから送っています。\n表示できていますか？\n"
    return _single(fields, "text/plain; charset=Shift_JIS", "8bit", _crlf_text(body, "shift_jis"))


def alternative(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Shop Notifications <no-reply@shop.example.com>",
                      "ご注文ありがとうございます (Order #1042)")
    boundary = f"=_alt_{rng.getrandbits(32):08x}"
    text = _crlf_text("ご注文ありがとうございます。\nOrder #1042 has shipped.\n", "utf-8")
    html = _crlf_text("<html><body><p>ご注文ありがとうございます。</p>\n"
                      "<p>Order <b>#1042</b> has shipped.</p></body></html>\n", "utf-8")
    return multipart(fields, boundary, [
        (part_header(boundary, "text/plain; charset=utf-8", "8bit"), text),
        (part_header(boundary, "text/html; charset=utf-8", "8bit"), html),
    ], subtype="alternative")


def _png_like(rng: random.Random, size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(size)


def _pdf_like(rng: random.Random, size: int) -> bytes:
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n" + rng.randbytes(size) + b"\n%%EOF\n"


def _with_attachment(
    rng: random.Random, fields: list[tuple[str, str]], text: bytes, charset: str,
    name: str, mime: str, blob: bytes,
) -> bytes:
    boundary = f"=_mix_{rng.getrandbits(32):08x}"
    return multipart(fields, boundary, [
        (part_header(boundary, f"text/plain; charset={charset}", "7bit"), text),
        (part_header(boundary, f'{mime}; name="{name}"', "base64",
                     f'attachment; filename="{name}"'), b64_lines(blob)),
    ])


def png_attachment(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Bob Jones <bob@example.com>", "Photo from the weekend")
    text = _crlf_text("Here is the photo I promised.\n", "ascii")
    return _with_attachment(rng, fields, text, "us-ascii", "weekend.png", "image/png",
                            _png_like(rng, 24_000))


def pdf_attachment(rng: random.Random, index: int) -> bytes:
    sender = address("株式会社サンプル", "info@sample.example.jp", "iso-2022-jp")
    fields = envelope(rng, index, sender, "資料の送付", charset="iso-2022-jp")
    text = "資料を添付しましたので、ご確認ください。".encode("iso2022_jp") + CRLF
    name = "=?ISO-2022-JP?B?" + base64.b64encode("資料.pdf".encode("iso2022_jp")).decode() + "?="
    return _with_attachment(rng, fields, text, "ISO-2022-JP", name, "application/pdf",
                            _pdf_like(rng, 60_000))


def dot_stuffing(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Alice Smith <alice@example.com>", "Dots . at line starts")
    body = (".this line starts with a dot\n..and this one with two\n"
            "the next line holds a single dot, which ends a POP3 response if unstuffed:\n"
            ".\nstill the same message after it\n. \n.\n")
    return _single(fields, "text/plain; charset=us-ascii", "7bit", _crlf_text(body, "ascii"))


def big_attachment(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Bob Jones <bob@example.com>", "Holiday video (3 MB)")
    text = _crlf_text("The video is attached; it is about 3 MB.\n", "ascii")
    return _with_attachment(rng, fields, text, "us-ascii", "holiday.mp4", "video/mp4",
                            rng.randbytes(3 * 1024 * 1024))


def reply(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Bob Jones <bob@example.com>", "Re: Welcome to popkeep")
    fields += [("In-Reply-To", "<20260105090000.0000000001@example.com>"),
               ("References", "<20260105090000.0000000001@example.com>")]
    body = "Thanks Alice!\n\n> Hello,\n> this is the first message of the demo mailbox.\n"
    return _single(fields, "text/plain; charset=us-ascii", "7bit", _crlf_text(body, "ascii"))


def mailing_list(rng: random.Random, index: int) -> bytes:
    fields = envelope(rng, index, "Newsletter <news@lists.example.jp>", "週刊ニュース 第12号")
    fields += [("List-Id", "<weekly.lists.example.jp>"),
               ("List-Unsubscribe", "<mailto:leave@lists.example.jp>")]
    body = "今週のニュースをお届けします。\n東京は今日も雨でした。\n\n配信停止はこちら。\n"
    return _single(fields, "text/plain; charset=utf-8", "8bit", _crlf_text(body, "utf-8"))


BUILDERS: tuple[Builder, ...] = (
    plain_ascii, utf8_8bit, utf8_base64, iso2022jp, shift_jis, alternative,
    png_attachment, pdf_attachment, dot_stuffing, big_attachment, reply, mailing_list,
)

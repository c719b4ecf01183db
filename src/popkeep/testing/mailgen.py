"""Deterministic mail generators for the demo, the tests and the benchmarks.

This module owns fake-but-realistic RFC 5322 messages: the small showcase
mailbox (:func:`demo_mailbox`), bulk benchmark mailboxes
(:func:`realistic_mailbox`) and huge single messages streamed in chunks
(:func:`big_message`). It must stay pure: no I/O, no clock, no global random
state. The same seed always gives the same bytes.

Every generated message uses CRLF line endings and ends with CRLF (RFC 5322
§2.1, RFC 1939 §3 sends it so). Domains are example.jp / example.com only.
"""

from __future__ import annotations

import bisect
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from popkeep.testing import demomail, mailtext
from popkeep.testing.mailtext import CRLF, address, b64_lines, encode_words, envelope

_B64_LINE = 78  # 76 base64 characters + CRLF (RFC 2045 §6.8)

SizeProfile = Literal["mixed", "small"]


def crlf(message: bytes) -> bytes:
    """Return ``message`` with every line ending (LF or CRLF) turned into CRLF."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def lf(message: bytes) -> bytes:
    """Return ``message`` with CRLF turned into LF (the Maildir form)."""
    return message.replace(b"\r\n", b"\n")


def demo_mailbox(seed: int = 0) -> list[bytes]:
    """The showcase mailbox: 12 messages exercising charsets, MIME and dot-stuffing.

    Contains plain ASCII, UTF-8 (8bit and base64 bodies), ISO-2022-JP,
    Shift_JIS, multipart/alternative, attachments (PNG-like, PDF-like), one
    message of about 3 MB, and one whose body has lines starting with "."
    and a line holding only "." (RFC 1939 §3 byte-stuffing).
    """
    rng = random.Random(seed)
    return [build(rng, index) for index, build in enumerate(demomail.BUILDERS)]


# ---------------------------------------------------------------- benchmark mail


@dataclass(frozen=True)
class _TextPool:
    """CRLF text lines of one charset, with offsets of every line start."""

    charset: str
    transfer: str
    data: bytes
    starts: list[int]

    def take(self, rng: random.Random, size: int) -> bytes:
        """About ``size`` octets of whole lines, starting at a random line."""
        limit = max(1, bisect.bisect_right(self.starts, len(self.data) - size) - 1)
        first = self.starts[rng.randrange(limit)]
        end_index = bisect.bisect_left(self.starts, first + size)
        end = self.starts[end_index] if end_index < len(self.starts) else len(self.data)
        return self.data[first:end]


@dataclass(frozen=True)
class _Pools:
    text: tuple[_TextPool, ...]  # ascii, utf-8, iso-2022-jp
    b64: bytes  # CRLF lines of random base64, each exactly _B64_LINE octets
    subjects: tuple[tuple[str, ...], ...]  # pre-encoded per text pool
    senders: tuple[tuple[str, ...], ...]


_POOL_TEXT_BYTES = 200_000
_POOL_B64_RAW = 1_600_000  # → ~2.1 MB of base64 lines: covers a 2 MB attachment


@functools.lru_cache(maxsize=4)
def _pools(seed: int) -> _Pools:
    rng = random.Random(seed ^ 0x5EED)
    texts = (
        _text_pool(rng, "us-ascii", "7bit", mailtext.english_line),
        _text_pool(rng, "utf-8", "8bit", mailtext.japanese_line),
        _text_pool(rng, "iso-2022-jp", "7bit", mailtext.japanese_line),
    )
    subjects = tuple(
        tuple(encode_words(s, pool.charset) for s in mailtext.subjects(pool.charset))
        for pool in texts
    )
    senders = tuple(
        tuple(address(d, m, pool.charset) for d, m in mailtext.SENDERS_BY_CHARSET[pool.charset])
        for pool in texts
    )
    return _Pools(texts, b64_lines(rng.randbytes(_POOL_B64_RAW)), subjects, senders)


def _text_pool(
    rng: random.Random, charset: str, transfer: str, make_line: mailtext.LineMaker
) -> _TextPool:
    lines: list[bytes] = []
    starts: list[int] = []
    total = 0
    while total < _POOL_TEXT_BYTES:
        line = make_line(rng).encode(charset) + CRLF
        starts.append(total)
        lines.append(line)
        total += len(line)
    return _TextPool(charset, transfer, b"".join(lines), starts)


def _b64_slice(pools: _Pools, rng: random.Random, size: int) -> bytes:
    """About ``size`` octets of base64 lines cut from the pool (no per-byte random)."""
    lines = max(1, min(size // _B64_LINE, len(pools.b64) // _B64_LINE))
    first = rng.randrange(len(pools.b64) // _B64_LINE - lines + 1)
    return pools.b64[first * _B64_LINE : (first + lines) * _B64_LINE]


def _target_size(rng: random.Random, profile: SizeProfile) -> tuple[int, int]:
    """(total size, attachment size): mostly 2–20 KB; ~3 % 100 KB–2 MB (log-uniform)."""
    if profile == "mixed" and rng.random() < 0.03:
        total = int(100_000 * 20 ** rng.random())
        return total, total - rng.randrange(1_500, 6_000)
    total = rng.randrange(2_000, 20_000)
    if rng.random() < 0.25:
        return total, rng.randrange(total // 4, total * 3 // 4)
    return total, 0


def _realistic_one(pools: _Pools, rng: random.Random, index: int, profile: SizeProfile) -> bytes:
    kind = rng.choices((0, 1, 2), weights=(60, 25, 15))[0]
    text = pools.text[kind]
    fields = envelope(rng, index, rng.choice(pools.senders[kind]), "")
    fields[5] = ("Subject", rng.choice(pools.subjects[kind]))
    total, attachment = _target_size(rng, profile)
    head_size = sum(len(n) + len(v) + 4 for n, v in fields) + 120
    body = text.take(rng, max(200, total - attachment - head_size))
    text_type = f"text/plain; charset={text.charset}"
    if not attachment:
        fields += [("Content-Type", text_type), ("Content-Transfer-Encoding", text.transfer)]
        return mailtext.header_block(fields) + body
    boundary = f"=_pk{index:06d}_{rng.getrandbits(32):08x}"
    name, mime = rng.choice(mailtext.ATTACHMENT_NAMES)
    return mailtext.multipart(fields, boundary, [
        (mailtext.part_header(boundary, text_type, text.transfer), body),
        (mailtext.part_header(boundary, f'{mime}; name="{name}"', "base64",
                              f'attachment; filename="{name}"'),
         _b64_slice(pools, rng, attachment)),
    ])


def realistic_mailbox(
    count: int, seed: int = 0, *, size_profile: SizeProfile = "mixed"
) -> Iterator[bytes]:
    """Yield ``count`` benchmark messages, deterministic under ``seed``.

    Mostly 2–20 KB (a quarter multipart with a small attachment); with the
    ``"mixed"`` profile about 3 % are 100 KB–2 MB with a base64 attachment, for
    an average near 30 KB. Headers mix ASCII, UTF-8 and ISO-2022-JP. Bodies and
    attachments are slices of pools built once per seed, so generation runs at
    memory speed.
    """
    pools = _pools(seed)
    rng = random.Random(seed)
    for index in range(count):
        yield _realistic_one(pools, rng, index, size_profile)


# ---------------------------------------------------------------- huge messages


_BIG_CHUNK_LINES = 840  # ≈ 64 KB per yielded chunk


def big_message(size: int, seed: int = 0) -> Iterator[bytes]:
    """Yield one message of exactly ``size`` octets in chunks of about 64 KB.

    Headers, then a base64 body of 76-character CRLF lines (the last one
    shorter, still a multiple of 4). The body cycles through a 1 MB pool, so
    memory stays bounded whatever ``size`` is. ``size`` must be at least 1024.
    """
    if size < 1024:
        raise ValueError("big_message needs size >= 1024")
    rng = random.Random(seed)
    pool = b64_lines(rng.randbytes(57 * 13_800))  # 13 800 full lines
    head = _big_head(rng)
    full, pad, last = _big_layout(size - len(head) - len("X-Padding: \r\n") - 1)
    yield head.replace(b"\r\n\r\n", b"\r\nX-Padding: -" + b"x" * pad + b"\r\n\r\n", 1)
    pool_lines = len(pool) // _B64_LINE
    position = rng.randrange(pool_lines)
    while full > 0:
        take = min(full, _BIG_CHUNK_LINES, pool_lines - position)
        yield pool[position * _B64_LINE : (position + take) * _B64_LINE]
        full -= take
        position = (position + take) % pool_lines
    if last:
        yield pool[:last] + CRLF


def _big_head(rng: random.Random) -> bytes:
    fields = envelope(rng, 0, "Archive Robot <archive@example.jp>", "Large archive")
    fields += [
        ("Content-Type", 'application/octet-stream; name="archive.bin"'),
        ("Content-Disposition", 'attachment; filename="archive.bin"'),
        ("Content-Transfer-Encoding", "base64"),
    ]
    return mailtext.header_block(fields)


def _big_layout(budget: int) -> tuple[int, int, int]:
    """Split ``budget`` octets into (full lines, header padding 0-3, last line chars).

    The last line holds ``last`` base64 characters plus CRLF, ``last`` a
    multiple of 4 between 4 and 76, or is absent; the padding absorbs the rest.
    """
    full, rest = divmod(budget, _B64_LINE)
    if rest == 0:
        return full, 0, 0
    if rest < 6 and full:
        full, rest = full - 1, rest + _B64_LINE
    pad = (rest - 2) % 4
    last = rest - 2 - pad
    if last <= 0:
        return full, rest, 0
    if last > 76:  # rest ≥ 80 only after borrowing: keep the spare in padding lines
        last, pad = 76, rest - 78
    return full, pad, last


def same_size_stranger(message: bytes) -> bytes:
    """A different message of exactly the size of ``message``: its Message-ID and
    Subject changed, letter for letter, so that only the header digest (TOP n 0)
    tells the two apart, not LIST (a reused UIDL's hardest case)."""
    head, sep, body = message.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        name = line.split(b":", 1)[0].lower()
        if name in (b"message-id", b"subject"):
            lines[i] = line[: len(name) + 1] + bytes(
                c if not chr(c).isalnum() else (ord("x") if c != ord("x") else ord("y"))
                for c in line[len(name) + 1 :]
            )
    stranger = b"\r\n".join(lines) + sep + body
    assert len(stranger) == len(message) and stranger != message
    return stranger

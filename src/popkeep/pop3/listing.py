"""Pure parsers for the bodies and texts of CAPA, UIDL, LIST and STAT.

Owns: turning server listings into typed values, strictly: anything that is
not what RFC 1939 / RFC 2449 allow raises RemoteProtocolError (never
IndexError / ValueError / UnicodeError). Must not: do I/O or keep state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from popkeep.errors import RemoteProtocolError
from popkeep.model import ServerStat

MAX_NUMBER_DIGITS = 12  # message numbers and sizes beyond this are not plausible
MAX_UID = 70  # RFC 1939 §7: unique-id is 1..70 octets in 0x21..0x7E

# Fast paths: a whole well-formed listing is recognised by one regex scan in C and
# split in bulk (20,000 lines in a few ms); anything else takes the strict
# line-by-line path below, which names the offending line.
_UIDL_BODY = re.compile(rb"(?:[1-9][0-9]{0,11} [\x21-\x7e]{1,70}\r?\n)*")
_LIST_BODY = re.compile(rb"(?:[1-9][0-9]{0,11} [0-9]{1,12}\r?\n)*")


def _lines(data: bytes) -> Iterator[bytes]:
    """The lines of a multi-line body, without their CRLF / LF."""
    for line in data.split(b"\n"):
        yield line[:-1] if line.endswith(b"\r") else line
    # split() yields one trailing empty item for a body ending in "\n"; callers skip it


def _number(token: bytes, what: str, minimum: int = 0) -> int:
    if not (token.isdigit() and len(token) <= MAX_NUMBER_DIGITS) or int(token) < minimum:
        raise RemoteProtocolError(f"{what}: expected a decimal number, got {token[:20]!r}")
    return int(token)


def _body_lines(data: bytes) -> list[bytes]:
    lines = list(_lines(data))
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def parse_capa(data: bytes) -> dict[str, list[str]]:
    """CAPA body (RFC 2449 §5) → {"SASL": ["PLAIN", "LOGIN"], "USER": [], …}.

    Capability names are upper-cased; arguments are kept as sent. Blank lines are skipped.
    """
    caps: dict[str, list[str]] = {}
    for line in _body_lines(data):
        words = line.decode("utf-8", "replace").split()
        if words:
            caps[words[0].upper()] = words[1:]
    return caps


def _valid_uid(token: bytes) -> bool:
    return 1 <= len(token) <= MAX_UID and all(0x21 <= b <= 0x7E for b in token)


def parse_uidl(data: bytes) -> list[tuple[int, str]]:
    """UIDL body (RFC 1939 §7) → [(number, uid)], in the server's order.

    Each line is exactly "number SP unique-id". Raises RemoteProtocolError on a
    malformed line, an invalid unique-id, or a message number listed twice.
    """
    if _UIDL_BODY.fullmatch(data):
        tokens = data.decode("ascii").split()
        numbers = list(map(int, tokens[0::2]))
        if len(set(numbers)) == len(numbers):
            return list(zip(numbers, tokens[1::2], strict=True))
    out: list[tuple[int, str]] = []
    seen: set[int] = set()
    for line in _body_lines(data):
        fields = line.split(b" ")
        if len(fields) != 2:
            raise RemoteProtocolError(f"UIDL: malformed line {line[:80]!r}")
        number = _number(fields[0], "UIDL message number", 1)
        if not _valid_uid(fields[1]):
            raise RemoteProtocolError(f"UIDL: invalid unique-id {fields[1][:80]!r}")
        if number in seen:
            raise RemoteProtocolError(f"UIDL: message {number} listed twice")
        seen.add(number)
        out.append((number, fields[1].decode("ascii")))
    return out


def parse_list(data: bytes) -> list[tuple[int, int]]:
    """LIST body (RFC 1939 §5 scan listings) → [(number, octets)].

    Anything after the size is allowed and ignored (RFC 1939 §5). Raises
    RemoteProtocolError on a malformed line or a message number listed twice.
    """
    if _LIST_BODY.fullmatch(data):
        values = list(map(int, data.split()))
        numbers = values[0::2]
        if len(set(numbers)) == len(numbers):
            return list(zip(numbers, values[1::2], strict=True))
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    for line in _body_lines(data):
        fields = line.split()
        if len(fields) < 2:
            raise RemoteProtocolError(f"LIST: malformed line {line[:80]!r}")
        number = _number(fields[0], "LIST message number", 1)
        if number in seen:
            raise RemoteProtocolError(f"LIST: message {number} listed twice")
        seen.add(number)
        out.append((number, _number(fields[1], "LIST size")))
    return out


def parse_stat(text: str) -> ServerStat:
    """The text of +OK to STAT ("2 320 …", RFC 1939 §5 drop listing) → ServerStat."""
    fields = text.split()
    if len(fields) < 2:
        raise RemoteProtocolError(f"STAT: malformed reply {text[:80]!r}")
    count = _number(fields[0].encode("utf-8"), "STAT count")
    octets = _number(fields[1].encode("utf-8"), "STAT size")
    return ServerStat(count, octets)


def parse_scan_line(text: str, number: int) -> int:
    """The text of +OK to ``LIST n`` ("n size …", RFC 1939 §5 scan listing) → the size.

    Raises RemoteProtocolError when the reply is malformed or names another message.
    """
    fields = text.split()
    if len(fields) < 2:
        raise RemoteProtocolError(f"LIST {number}: malformed reply {text[:80]!r}")
    if _number(fields[0].encode("utf-8"), "LIST message number") != number:
        raise RemoteProtocolError(f"LIST {number}: reply names message {fields[0][:20]!r}")
    return _number(fields[1].encode("utf-8"), "LIST size")


def index_uids(uidl: list[tuple[int, str]]) -> dict[str, int]:
    """UIDL pairs → {unique-id: message number}, in message-number order.

    Raises RemoteProtocolError when two different messages share one unique-id:
    RFC 1939 §7 forbids it, and collecting such a mailbox could deliver one
    message under the other's identity or delete the wrong one, so the run
    stops instead.
    """
    ordered = sorted(uidl)
    by_uid = {uid: number for number, uid in ordered}
    if len(by_uid) != len(ordered):
        owner: dict[str, int] = {}
        for number, uid in ordered:
            if uid in owner:
                raise RemoteProtocolError(
                    f"messages {owner[uid]} and {number} share the unique-id {uid!r}"
                )
            owner[uid] = number
    return by_uid


def parse_uid_index(data: bytes) -> dict[str, int]:
    """UIDL body → {unique-id: message number} in number order: :func:`index_uids` of
    :func:`parse_uidl`, built in bulk for a well-formed listing (the no-op poll's path)."""
    index = UidIndexBuilder()
    index.feed(data)
    return index.result()


class UidIndexBuilder:
    """:func:`parse_uid_index` of a body that arrives in pieces of whole lines.

    The bulk of the work (validation, split, ``int``) is done per piece, while the
    rest of a 20,000-line listing is still on its way; :meth:`result` only builds
    the dict. Anything unusual falls back to the line-by-line parser, which names
    the offending line or unique-id.
    """

    __slots__ = ("_bulk", "_by_uid", "_numbers", "_parts")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._numbers: list[int] = []
        self._by_uid: dict[str, int] = {}
        self._bulk = True

    def feed(self, piece: bytes) -> None:
        """Whole lines of the body (a multi-line response's Data event)."""
        self._parts.append(piece)
        if self._bulk and _UIDL_BODY.fullmatch(piece):
            tokens = piece.decode("ascii").split()
            numbers = list(map(int, tokens[0::2]))
            self._numbers += numbers
            self._by_uid.update(zip(tokens[1::2], numbers, strict=True))
        else:
            self._bulk = False

    def result(self) -> dict[str, int]:
        numbers, by_uid = self._numbers, self._by_uid
        if self._bulk and len(by_uid) == len(numbers):  # else a unique-id repeats
            if not numbers or numbers == list(range(numbers[0], numbers[0] + len(numbers))):
                return by_uid  # consecutive numbers (the usual 1..n): unique and in order
            if len(set(numbers)) == len(numbers):
                if numbers == sorted(numbers):
                    return by_uid
                return dict(sorted(by_uid.items(), key=lambda item: item[1]))
        return index_uids(parse_uidl(b"".join(self._parts)))

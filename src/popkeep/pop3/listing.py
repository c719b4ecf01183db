"""Pure parsers for the bodies and texts of CAPA, UIDL, LIST and STAT.

Owns: turning server listings into typed values, and sorting a listing a server
got wrong into what may be acted on and what may not: a UIDL or LIST line that
does not parse, a message number listed twice or beyond STAT's count is left out
and counted, never raised on (docs/guarantees.md, "sources: POP3"); a unique-id
RFC 1939 §7 does not allow is data, keyed by :func:`uid_key`. Single replies
(STAT, ``LIST n``) that do not parse raise RemoteProtocolError (never
IndexError / ValueError / UnicodeError). Must not: do I/O or keep state.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

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


#: Prefix of the key of a unique-id RFC 1939 §7 does not allow: it holds a space,
#: which no valid unique-id does, so such keys never collide with a plain one.
ODD_UID_PREFIX = "uidl-sha256 "


def uid_key(uid: bytes) -> str:
    """The key popkeep stores a message under, given its unique-id as sent.

    A valid unique-id (1..70 octets in 0x21..0x7E, RFC 1939 §7) is its own key, as
    text. Any other (longer, non-ASCII, with spaces or control bytes) is data, not
    refused: its key is :data:`ODD_UID_PREFIX` + the sha256 (hex) of its octets,
    printable, bounded, and the same in every session where the server sends the
    same octets. Keys are never used in a path, a header or a command.
    """
    if _valid_uid(uid):
        return uid.decode("ascii")
    return ODD_UID_PREFIX + hashlib.sha256(uid).hexdigest()


#: Prefix of the key of a message identified by its header, not by a unique-id of
#: its own (see :func:`identity_key`); it holds a space, like :data:`ODD_UID_PREFIX`.
IDENTITY_PREFIX = "header-sha256 "


def identity_key(digest: str, size: int, occurrence: int = 1, uid: str | None = None) -> str:
    """The key of a message told apart by its header digest (``TOP n 0``,
    :func:`popkeep.headers.header_digest`) and its LIST size rather than by a unique-id
    of its own: ``[<uid> ]header-sha256 <digest> <size>``, and `` #<occurrence>`` for
    the second and later messages with the same digest and size in one listing
    (counted in message-number order).

    ``uid``: the unique-id several messages of the listing share (RFC 1939 §7 forbids
    it; servers do it), else None (a server without UIDL). The key is the same in
    every session where the message is (and, for a later occurrence, the messages
    like it before it are) still there; it never equals a valid unique-id (it holds
    a space) or an :func:`uid_key` of one.
    """
    key = f"{IDENTITY_PREFIX}{digest} {size}"
    if uid is not None:
        key = f"{uid} {key}"
    return key if occurrence == 1 else f"{key} #{occurrence}"


def parse_uidl(data: bytes) -> tuple[list[tuple[int, str]], int]:
    """UIDL body (RFC 1939 §7) → ([(number, key)] in the server's order, lines skipped).

    A line is "number SP unique-id"; everything after the first space is the
    unique-id, made a key by :func:`uid_key`. A line without a valid message number
    or without a unique-id is skipped and counted, never raised on: one bad line
    does not refuse the mailbox. Checks across lines are :func:`index_uids`'.
    """
    out: list[tuple[int, str]] = []
    skipped = 0
    for line in _body_lines(data):
        number, space, uid = line.partition(b" ")
        if not (space and uid and _plausible(number)) or int(number) < 1:
            skipped += 1
        else:
            out.append((int(number), uid_key(uid)))
    return out, skipped


def parse_list(data: bytes) -> dict[int, int]:
    """LIST body (RFC 1939 §5 scan listings) → {number: octets}, in the server's order.

    Anything after the size is allowed and ignored (RFC 1939 §5). Lines that do not
    parse, and every line of a message number listed twice, are left out: the
    caller treats a message without a size as not described (never fetched or
    deleted on that listing).
    """
    if _LIST_BODY.fullmatch(data):
        values = list(map(int, data.split()))
        numbers = values[0::2]
        if len(set(numbers)) == len(numbers):
            return dict(zip(numbers, values[1::2], strict=True))
    sizes: dict[int, int] = {}
    twice: set[int] = set()
    for line in _body_lines(data):
        fields = line.split()
        if len(fields) < 2 or not all(_plausible(f) for f in fields[:2]):
            continue
        number = int(fields[0])
        if number in sizes:
            twice.add(number)
        sizes[number] = int(fields[1])
    for number in twice:
        del sizes[number]
    return sizes


def _plausible(token: bytes) -> bool:
    return token.isdigit() and len(token) <= MAX_NUMBER_DIGITS


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


class UidIndex(NamedTuple):
    """A UIDL listing sorted out: what may be acted on, and what may not.

    A message is in it only when its line parsed, its number is listed once and is
    within STAT's count (RFC 1939 §5: messages are numbered 1..count).
    """

    keys: dict[str, int]  #: key → message number, in number order: one message per key
    #: key → the numbers of the messages sharing it (RFC 1939 §7 forbids it; servers
    #: do it): not in ``keys``; the source tells them apart or leaves them alone
    shared: dict[str, list[int]]
    skipped: int  #: lines left out: unparsable, a number listed twice, beyond the count


def index_uids(pairs: list[tuple[int, str]], count: int, skipped: int = 0) -> UidIndex:
    """(number, key) pairs of :func:`parse_uidl` → the :class:`UidIndex` of a mailbox
    of ``count`` messages (STAT). ``skipped``: lines already left out by the parser.

    A message number listed twice is left out entirely (which line is right cannot
    be told); so is a number beyond ``count``.
    """
    times = Counter(number for number, _ in pairs)
    owners: dict[str, list[int]] = {}
    for number, key in sorted(pairs):
        if times[number] > 1 or number > count:
            skipped += 1
            continue
        owners.setdefault(key, []).append(number)
    keys = {key: numbers[0] for key, numbers in owners.items() if len(numbers) == 1}
    shared = {key: numbers for key, numbers in owners.items() if len(numbers) > 1}
    return UidIndex(keys, shared, skipped)


def parse_uid_index(data: bytes, count: int) -> UidIndex:
    """UIDL body → :class:`UidIndex`: :func:`index_uids` of :func:`parse_uidl`, built
    in bulk for a well-formed listing (the no-op poll's path)."""
    index = UidIndexBuilder()
    index.feed(data)
    return index.result(count)


class UidIndexBuilder:
    """:func:`parse_uid_index` of a body that arrives in pieces of whole lines.

    The bulk of the work (validation, split, ``int``) is done per piece, while the
    rest of a 20,000-line listing is still on its way; :meth:`result` only builds
    the dict. Anything unusual falls back to the line-by-line parser, which keeps
    the consistent entries and counts the rest. The body itself is not kept: what
    the pieces parsed to is (issue 16 item 3).
    """

    __slots__ = ("_bulk", "_by_uid", "_numbers", "_pairs", "_skipped", "_uids")

    def __init__(self) -> None:
        self._numbers: list[int] = []
        self._uids: list[str] = []
        self._by_uid: dict[str, int] = {}
        self._bulk = True
        #: once a piece is not well formed: (number, key) of every line so far
        self._pairs: list[tuple[int, str]] = []
        self._skipped = 0

    def feed(self, piece: bytes) -> None:
        """Whole lines of the body (a multi-line response's Data event)."""
        if self._bulk and _UIDL_BODY.fullmatch(piece):
            tokens = piece.decode("ascii").split()
            numbers = list(map(int, tokens[0::2]))
            uids = tokens[1::2]
            self._numbers += numbers
            self._uids += uids
            self._by_uid.update(zip(uids, numbers, strict=True))
            return
        if self._bulk:  # the well-formed lines so far are what parse_uidl makes of them
            self._bulk = False
            self._pairs = list(zip(self._numbers, self._uids, strict=True))
            self._numbers, self._uids, self._by_uid = [], [], {}
        pairs, skipped = parse_uidl(piece)  # whole lines: the same as parsing the body
        self._pairs += pairs
        self._skipped += skipped

    def result(self, count: int) -> UidIndex:
        """The index of a mailbox of ``count`` messages (STAT)."""
        numbers, by_uid = self._numbers, self._by_uid
        if self._bulk and len(by_uid) == len(numbers):  # else a unique-id repeats
            if not numbers or numbers == list(range(numbers[0], numbers[0] + len(numbers))):
                if not numbers or numbers[-1] <= count:
                    return UidIndex(by_uid, {}, 0)  # consecutive (the usual 1..n), in order
            elif len(set(numbers)) == len(numbers) and max(numbers) <= count:
                if numbers == sorted(numbers):
                    return UidIndex(by_uid, {}, 0)
                return UidIndex(dict(sorted(by_uid.items(), key=lambda item: item[1])), {}, 0)
        if self._bulk:
            return index_uids(list(zip(numbers, self._uids, strict=True)), count)
        return index_uids(self._pairs, count, self._skipped)


#: A message number without a size in a :class:`ScanBuilder` result.
NO_SIZE = -1


class ScanBuilder:
    """:func:`parse_list` of a LIST body that arrives in pieces of whole lines, into one
    compact array: ``sizes[n]`` is message n's size, :data:`NO_SIZE` where LIST does not
    tell it consistently (8 bytes a message, not a dict entry and two ints: a
    200,000-message listing is 1.6 MB; issue 16 item 3).

    A well-formed listing of consecutive numbers (the usual 1..n) is appended piece by
    piece as it arrives; anything else is parsed whole by :func:`parse_list` at the end.
    """

    __slots__ = ("_bulk", "_parts", "_sizes")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._sizes = array("q", [NO_SIZE])  # numbers start at 1 (RFC 1939 §5)
        self._bulk = True

    def feed(self, piece: bytes) -> None:
        """Whole lines of the body (a multi-line response's Data event)."""
        self._parts.append(piece)
        if not (self._bulk and _LIST_BODY.fullmatch(piece)):
            self._bulk = False
            return
        values = list(map(int, piece.split()))
        numbers = values[0::2]
        first = len(self._sizes)
        if numbers and numbers != list(range(first, first + len(numbers))):
            self._bulk = False
            return
        self._sizes.extend(values[1::2])

    def result(self, count: int) -> array[int]:
        """Sizes by message number of a mailbox of ``count`` messages (STAT): the array
        has ``count + 1`` entries; numbers beyond the count are left out."""
        if self._bulk:
            sizes = self._sizes
        else:
            sizes = array("q", [NO_SIZE]) * (count + 1)
            for number, size in parse_list(b"".join(self._parts)).items():
                if number <= count:
                    sizes[number] = size
        self._parts = []
        del sizes[count + 1 :]
        sizes.extend([NO_SIZE] * (count + 1 - len(sizes)))
        return sizes

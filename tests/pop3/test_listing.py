"""Listing parsers: listings keep their consistent entries and count the rest; single
replies raise only RemoteProtocolError on bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from popkeep.errors import RemoteProtocolError
from popkeep.model import ServerStat
from popkeep.pop3.listing import (
    NO_SIZE,
    ODD_UID_PREFIX,
    ScanBuilder,
    UidIndex,
    UidIndexBuilder,
    identity_key,
    index_uids,
    parse_capa,
    parse_list,
    parse_scan_line,
    parse_stat,
    parse_uid_index,
    parse_uidl,
    uid_key,
)


def test_capa() -> None:
    caps = parse_capa(b"USER\r\nsasl PLAIN LOGIN\r\nPIPELINING\r\n\r\nIMPLEMENTATION x y\r\n")
    assert caps == {"USER": [], "SASL": ["PLAIN", "LOGIN"], "PIPELINING": [],
                    "IMPLEMENTATION": ["x", "y"]}


def test_uidl_list_stat() -> None:
    assert parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\n") == ([
        (1, "whqtswO00WBw418f9t5JxYwZ"), (2, "QhdPYR:00WBw1Ph7x7")], 0)
    assert parse_list(b"1 120\r\n2 200 extra info\r\n") == {1: 120, 2: 200}
    assert parse_uidl(b"") == ([], 0) and parse_list(b"") == {}
    assert parse_stat("2 320") == ServerStat(2, 320)
    assert parse_stat("2 320 messages") == ServerStat(2, 320)


ODD = [b"u" * 71, b"caf\xc3\xa9", b"a\x7f", b"a b", b" abc", b"../x;rm -rf ~|$(id)"]


@pytest.mark.parametrize("uid", ODD)
def test_odd_uidls_are_data_with_a_stable_printable_key(uid: bytes) -> None:
    (number, key), = parse_uidl(b"7 " + uid + b"\r\n")[0]
    assert number == 7 and key == uid_key(uid) and key.startswith(ODD_UID_PREFIX)
    assert key.isprintable() and key.isascii() and len(key) < 80
    assert key == uid_key(bytes(uid))  # the same octets: the same key, every session
    assert uid_key(uid + b"!") != key


def test_valid_uidls_are_their_own_keys_and_never_collide_with_odd_ones() -> None:
    for uid in (b"x" * 70, b"!~", b"uidl-sha256"):
        assert uid_key(uid) == uid.decode()
    assert " " not in uid_key(b"x" * 70) and " " in uid_key(b"x" * 71)


def test_identity_keys_never_collide_with_unique_ids_or_each_other() -> None:
    d = "ab" * 32
    assert identity_key(d, 120) == f"header-sha256 {d} 120"
    assert identity_key(d, 120, 2) == f"header-sha256 {d} 120 #2"
    assert identity_key(d, 120, uid="u-1") == f"u-1 header-sha256 {d} 120"
    keys = {identity_key(d, size, n, uid) for size in (1, 2) for n in (1, 2, 3)
            for uid in (None, "u-1", uid_key(b"x" * 80))}
    assert len(keys) == 18 and all(" " in key for key in keys)


@pytest.mark.parametrize("data", [
    b"1\r\n", b"x abc\r\n", b"0 abc\r\n", b"-1 abc\r\n", b"\r\n", b"1 \r\n",
    b"99999999999999 a\r\n", b"\xb2 a\r\n",
])
def test_unparsable_uidl_lines_are_counted_not_raised(data: bytes) -> None:
    assert parse_uidl(b"5 good\r\n" + data) == ([(5, "good")], 1)
    assert parse_uid_index(b"5 good\r\n" + data, 5) == UidIndex({"good": 5}, {}, 1)


def test_uid_index_keeps_only_the_consistent_entries() -> None:
    body = b"1 a\r\n2 b\r\n2 c\r\n3 s\r\n4 s\r\n9 z\r\nbad\r\n5 e\r\n"
    index = parse_uid_index(body, 5)
    # 2 listed twice (both lines out), 9 beyond STAT's 5, "bad" unparsable: 4 skipped
    assert index == UidIndex({"a": 1, "e": 5}, {"s": [3, 4]}, 4)


def test_uid_index_bulk_path_matches_the_line_by_line_one() -> None:
    body = b"".join(b"%d u%05d\r\n" % (n, 7 * n % 1000) for n in range(1, 500))
    for data in (body, b"".join(reversed(body.splitlines(True))), body.replace(b"\r\n", b"\n")):
        fast = parse_uid_index(data, 499)
        assert list(fast.keys.items()) == list(index_uids(*parse_uidl(data)[:1], 499).keys.items())
        assert list(fast.keys.values()) == sorted(fast.keys.values())
    assert parse_uid_index(b"1 a\r\n2 b\r\n3 a\r\n", 3) == UidIndex({"b": 2}, {"a": [1, 3]}, 0)
    assert parse_uid_index(body, 498).skipped == 1  # number 499 beyond STAT's count


def _fed(pieces: list[bytes], count: int = 1000) -> UidIndex:
    index = UidIndexBuilder()
    for piece in pieces:
        index.feed(piece)
    return index.result(count)


def test_uid_index_fed_in_pieces_of_whole_lines_matches_one_body() -> None:
    lines = [b"%d u%05d\r\n" % (n, 7 * n % 1000) for n in range(1, 500)]
    for cut in (1, 7, 100, 499):
        pieces = [b"".join(lines[i : i + cut]) for i in range(0, len(lines), cut)]
        assert _fed(pieces) == parse_uid_index(b"".join(lines), 1000)
    assert _fed([]) == UidIndex({}, {}, 0)
    # What only shows across pieces is still found.
    assert _fed([b"1 a\r\n", b"2 b\r\n", b"3 a\r\n"]).shared == {"a": [1, 3]}
    assert _fed([b"1 a\r\n", b"1 b\r\n"]) == UidIndex({}, {}, 2)  # one number twice
    assert _fed([b"1 a\r\n", b"2 a b\r\n"]).keys == {"a": 1, uid_key(b"a b"): 2}


def test_scan_line() -> None:
    assert parse_scan_line("7 1234", 7) == 1234
    assert parse_scan_line("7 1234 extra words", 7) == 1234
    for text in ("7", "8 1234", "7 x", "x 1"):
        with pytest.raises(RemoteProtocolError):
            parse_scan_line(text, 7)


@pytest.mark.parametrize(
    "data", [b"1\r\n", b"1 x\r\n", b"a 1\r\n", b"1 1\r\n1 2\r\n", b"1 \xb2\r\n"]
)
def test_list_leaves_inconsistent_lines_out(data: bytes) -> None:
    assert parse_list(b"9 90\r\n" + data) == {9: 90}


@pytest.mark.parametrize("text", ["", "2", "x 3", "2 ²", "-1 5"])
def test_stat_rejects(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_stat(text)


@given(st.binary(max_size=300))
def test_parsers_never_crash(data: bytes) -> None:
    parse_uidl(data), parse_list(data), parse_capa(data)  # never raise
    parse_uid_index(data, 10)
    with contextlib.suppress(RemoteProtocolError):
        parse_stat(data.decode("utf-8", "replace"))


def _scan(pieces: list[bytes], count: int) -> list[int]:
    builder = ScanBuilder()
    for piece in pieces:
        builder.feed(piece)
    return list(builder.result(count))


@pytest.mark.parametrize(
    ("pieces", "count"),
    [
        ([b"1 10\r\n2 20\r\n", b"3 30\r\n"], 3),  # the usual 1..n, in pieces
        ([b"1 10\r\n2 20\r\n", b"2 21\r\n3 30\r\n"], 3),  # a number twice
        ([b"1 10\r\n3 30\r\n"], 3),  # a gap
        ([b"2 20\r\n1 10\r\n"], 2),  # out of order
        ([b"1 10\r\n", b"x 5\r\n2 20 extra\r\n"], 2),  # unparsable; text after a size
        ([b"1 10\r\n2 20\r\n3 30\r\n"], 2),  # beyond STAT's count
        ([b"1 10\r\n"], 3),  # fewer than the count
        ([], 0),
    ],
)
def test_scan_builder_agrees_with_parse_list(pieces: list[bytes], count: int) -> None:
    """ScanBuilder (sizes by number in one array, issue 16 item 3) keeps exactly what
    parse_list keeps, within STAT's count; a number it does not describe is NO_SIZE."""
    listed = parse_list(b"".join(pieces))
    expected = [NO_SIZE] + [listed.get(n, NO_SIZE) for n in range(1, count + 1)]
    assert _scan(pieces, count) == expected

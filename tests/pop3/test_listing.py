"""Listing parsers: strict, and only RemoteProtocolError on bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from popkeep.errors import RemoteProtocolError
from popkeep.model import ServerStat
from popkeep.pop3.listing import (
    UidIndexBuilder,
    index_uids,
    parse_capa,
    parse_list,
    parse_scan_line,
    parse_stat,
    parse_uid_index,
    parse_uidl,
)


def test_capa() -> None:
    caps = parse_capa(b"USER\r\nsasl PLAIN LOGIN\r\nPIPELINING\r\n\r\nIMPLEMENTATION x y\r\n")
    assert caps == {"USER": [], "SASL": ["PLAIN", "LOGIN"], "PIPELINING": [],
                    "IMPLEMENTATION": ["x", "y"]}


def test_uidl_list_stat() -> None:
    assert parse_uidl(b"1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\n") == [
        (1, "whqtswO00WBw418f9t5JxYwZ"), (2, "QhdPYR:00WBw1Ph7x7")]
    assert parse_list(b"1 120\r\n2 200 extra info\r\n") == [(1, 120), (2, 200)]
    assert parse_uidl(b"") == [] and parse_list(b"") == []
    assert parse_stat("2 320") == ServerStat(2, 320)
    assert parse_stat("2 320 messages") == ServerStat(2, 320)


@pytest.mark.parametrize("data", [
    b"1\r\n", b"1 a b\r\n", b"x abc\r\n", b"0 abc\r\n", b"-1 abc\r\n",
    b"1 " + b"u" * 71 + b"\r\n", b"1 caf\xc3\xa9\r\n", b"1 a\x7f\r\n",
    b"1 a\r\n1 b\r\n", b"\r\n", b"1  abc\r\n", b"99999999999999 a\r\n",
])
def test_uidl_rejects(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uidl(data)
    with pytest.raises(RemoteProtocolError):
        parse_uid_index(data)


def test_uid_index_bulk_path_matches_the_strict_one() -> None:
    body = b"".join(b"%d u%05d\r\n" % (n, 7 * n % 1000) for n in range(1, 500))
    for data in (body, b"".join(reversed(body.splitlines(True))), body.replace(b"\r\n", b"\n")):
        fast = parse_uid_index(data)
        assert list(fast.items()) == list(index_uids(parse_uidl(data)).items())
        assert list(fast.values()) == sorted(fast.values())
    with pytest.raises(RemoteProtocolError, match="share the unique-id"):
        parse_uid_index(b"1 a\r\n2 b\r\n3 a\r\n")


def _fed(pieces: list[bytes]) -> dict[str, int]:
    index = UidIndexBuilder()
    for piece in pieces:
        index.feed(piece)
    return index.result()


def test_uid_index_fed_in_pieces_of_whole_lines_matches_one_body() -> None:
    lines = [b"%d u%05d\r\n" % (n, 7 * n % 1000) for n in range(1, 500)]
    for cut in (1, 7, 100, 499):
        pieces = [b"".join(lines[i : i + cut]) for i in range(0, len(lines), cut)]
        assert list(_fed(pieces).items()) == list(parse_uid_index(b"".join(lines)).items())
    assert _fed([]) == {}
    # What only shows across pieces still fails, naming what is wrong.
    with pytest.raises(RemoteProtocolError, match="share the unique-id"):
        _fed([b"1 a\r\n", b"2 b\r\n", b"3 a\r\n"])
    with pytest.raises(RemoteProtocolError):
        _fed([b"1 a\r\n", b"1 b\r\n"])  # one message number twice
    with pytest.raises(RemoteProtocolError):
        _fed([b"1 a\r\n", b"2 a b\r\n"])  # a malformed line in a later piece


def test_scan_line() -> None:
    assert parse_scan_line("7 1234", 7) == 1234
    assert parse_scan_line("7 1234 extra words", 7) == 1234
    for text in ("7", "8 1234", "7 x", "x 1"):
        with pytest.raises(RemoteProtocolError):
            parse_scan_line(text, 7)


@pytest.mark.parametrize(
    "data", [b"1\r\n", b"1 x\r\n", b"a 1\r\n", b"1 1\r\n1 2\r\n", b"1 \xb2\r\n"]
)
def test_list_rejects(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_list(data)


@pytest.mark.parametrize("text", ["", "2", "x 3", "2 ²", "-1 5"])
def test_stat_rejects(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_stat(text)


@given(st.binary(max_size=300))
def test_parsers_never_crash(data: bytes) -> None:
    for parse in (parse_uidl, parse_uid_index, parse_list, parse_capa):
        with contextlib.suppress(RemoteProtocolError):
            parse(data)
    with contextlib.suppress(RemoteProtocolError):
        parse_stat(data.decode("utf-8", "replace"))

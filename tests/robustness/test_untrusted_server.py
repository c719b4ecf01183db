"""Issue 16 items 3 and 4 against the real CLI: listings are bounded, and server text
reaches no output (terminal, ``--json``, state database, ``status``) with its control
characters or with the account's password in it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from popkeep.cli import main
from popkeep.transport import tcp

from .conftest import PASSWORD, Case

Hostile = Callable[..., Case]


def test_endless_uidl_ends_in_one_line_error(hostile: Hostile) -> None:
    # Before: the listing was collected until session_timeout (one hour), ≈150 MB/s.
    case = hostile(endless_listing=True)
    case.configure(delete_after="0s")
    began = time.monotonic()
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "UIDL listing longer than 500000 lines")
    assert time.monotonic() - began < 60
    assert case.stored() == {} and case.server.mailbox.deleted == []
    case.resume()


def test_trickling_server_is_cut_by_the_progress_rule(
    hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 octets/s: every read succeeds within `timeout`, so before the progress rule
    # only session_timeout (one hour by default; 30 s here) ended the run.
    monkeypatch.setattr(tcp, "PROGRESS_WINDOW", 1.0, raising=False)
    case = hostile(trickle_delay=0.01)
    case.configure(extra='session_timeout = "30s"')
    began = time.monotonic()
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "too slow", "octets/s")
    assert code == 75
    assert time.monotonic() - began < 10
    case.resume()


HOSTILE_ERR = b"\x1b[2J\x1b]0;owned\x07\x1b[31m no such user or password " + PASSWORD.encode()


def _clean(text: str) -> None:
    assert PASSWORD not in text
    assert not any(ord(c) < 32 and c not in "\n" for c in text), repr(text)
    assert "\x7f" not in text


def test_server_error_text_is_clean_in_every_output(hostile: Hostile) -> None:
    case = hostile(auth_error=HOSTILE_ERR)
    config = case.configure()
    code, err = case.fetch()  # the terminal line
    assert code == 77 and len(err) == 1, err
    _clean(err[0])
    assert "no such user or password ********" in err[0]
    case.capsys.readouterr()
    assert main(["-c", str(config), "fetch", "--json"]) == 77
    out = case.capsys.readouterr()
    _clean(out.out + out.err)
    error = json.loads(out.out)["accounts"][0]["error"]
    _clean(error)  # the JSON string itself, after decoding its escapes
    stored = case.query("SELECT error FROM runs")
    assert len(stored) == 2
    for text in stored:
        _clean(text)
        assert "\\x1b]0;owned\\x07" in text  # escaped, still readable
    for argv in (["status"], ["status", "--json"]):
        assert main(["-c", str(config), *argv]) in (0, 1)
        out = case.capsys.readouterr()
        _clean(out.out + out.err)


def test_every_error_escapes_control_characters() -> None:
    # Text from sink servers (IMAP, LMTP, Gmail) does not pass the POP3 codec.
    from popkeep.errors import DeliveryError

    error = DeliveryError("APPEND: NO \x1b[8mhidden\r\nforged: line\u202e")
    assert str(error) == "APPEND: NO \\x1b[8mhidden\\r\\nforged: line\\u202e"
    assert error.message == str(error)

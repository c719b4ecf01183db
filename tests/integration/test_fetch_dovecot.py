"""The collector end to end: `popkeep fetch` against a real Dovecot over real sockets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from popkeep.cli import main
from popkeep.testing.mailgen import realistic_mailbox

from ..fixtures.dovecot import Dovecot
from .helpers import account_toml, digests, dovecot_config, fetch, maildir_messages, write_config

pytestmark = pytest.mark.dovecot


def _fill(dovecot: Dovecot, user: str, count: int, seed: int) -> None:
    dovecot.add_messages(user, realistic_mailbox(count, seed=seed))


@pytest.mark.parametrize("implicit", [False, True], ids=["stls", "implicit-tls"])
def test_500_messages_arrive_byte_identical(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    implicit: bool,
) -> None:
    _fill(dovecot, dovecot_user, 500, seed=1)
    config = dovecot_config(dovecot, tmp_path, dovecot_user, implicit=implicit)
    code, data = fetch(config, capsys)
    assert code == 0, data
    assert data["delivered"] == 500
    stored = maildir_messages(tmp_path / "Maildir")
    assert len(stored) == 500
    assert b"\r\n" not in b"".join(stored)  # Maildir holds LF line endings
    assert digests(stored) == digests(dovecot.messages(dovecot_user))
    assert dovecot.message_count(dovecot_user) == 500  # delete_after = never


def test_second_fetch_delivers_only_what_is_new(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(dovecot, dovecot_user, 30, seed=2)
    config = dovecot_config(dovecot, tmp_path, dovecot_user)
    assert fetch(config, capsys)[1]["delivered"] == 30
    code, again = fetch(config, capsys)
    assert (code, again["delivered"], again["listed"]) == (0, 0, 30)
    extra = b"From: a@example.jp\r\nSubject: late\r\nMessage-ID: <late@example.jp>\r\n\r\nnew\r\n"
    dovecot.add_messages(dovecot_user, [extra])
    code, third = fetch(config, capsys)
    assert (code, third["delivered"]) == (0, 1)
    stored = maildir_messages(tmp_path / "Maildir")
    assert len(stored) == 31
    assert sum(1 for m in stored if m == extra.replace(b"\r\n", b"\n")) == 1


def test_delete_after_0s_empties_the_server(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(dovecot, dovecot_user, 40, seed=3)
    source = digests(dovecot.messages(dovecot_user))
    config = dovecot_config(dovecot, tmp_path, dovecot_user, delete_after="0s")
    code, data = fetch(config, capsys)
    assert (code, data["delivered"], data["deleted"]) == (0, 40, 40)
    assert dovecot.message_count(dovecot_user) == 0
    assert digests(maildir_messages(tmp_path / "Maildir")) == source


def test_delete_after_never_keeps_everything(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(dovecot, dovecot_user, 20, seed=4)
    config = dovecot_config(dovecot, tmp_path, dovecot_user, delete_after="never")
    for _ in range(2):
        code, data = fetch(config, capsys)
        assert (code, data["deleted"]) == (0, 0)
    assert dovecot.message_count(dovecot_user) == 20


def _fetch_until(
    config: Path, capsys: pytest.CaptureFixture[str], done: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """Fetch repeatedly until ``done(result)`` or the timeout (a condition wait, no sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        code, data = fetch(config, capsys)
        assert code == 0, data
        if done(data) or time.monotonic() > deadline:
            return data


def test_delete_after_a_period_deletes_exactly_the_expired(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(dovecot, dovecot_user, 10, seed=5)
    config = dovecot_config(dovecot, tmp_path, dovecot_user, delete_after="3s")
    start = time.monotonic()
    code, data = fetch(config, capsys)
    assert (code, data["delivered"], data["deleted"]) == (0, 10, 0)
    # Polls while the first ten are in their grace period: nothing may be deleted.
    data = _fetch_until(config, capsys, lambda d: time.monotonic() - start > 1.5, 10)
    assert data["deleted"] == 0 and dovecot.message_count(dovecot_user) == 10
    late = b"From: b@example.jp\r\nSubject: later\r\n\r\nstill in its grace period\r\n"
    dovecot.add_messages(dovecot_user, [late])
    assert fetch(config, capsys)[1]["delivered"] == 1
    data = _fetch_until(config, capsys, lambda d: d["deleted"] > 0, 15)
    assert data["deleted"] == 10
    assert time.monotonic() - start >= 3
    assert dovecot.messages(dovecot_user) == [late.replace(b"\r\n", b"\n")]


def test_message_deleted_elsewhere_is_reported_gone(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import poplib

    _fill(dovecot, dovecot_user, 5, seed=6)
    config = dovecot_config(dovecot, tmp_path, dovecot_user)
    assert fetch(config, capsys)[1]["delivered"] == 5
    other = poplib.POP3(dovecot.host, dovecot.pop3_port, timeout=10)  # "the phone"
    other.user(dovecot_user)
    other.pass_(dovecot.password)
    other.dele(1)
    other.quit()
    code, data = fetch(config, capsys)
    assert (code, data["gone"], data["delivered"], data["listed"]) == (0, 1, 0, 4)


def _assert_nothing_happened(
    dovecot: Dovecot, user: str, base: Path, count: int, alerts: tuple[str, ...] = ()
) -> None:
    """Nothing collected, nothing deleted; in the Maildir only these alert notices
    (``X-Popkeep-Alert`` values, docs/alerts.md)."""
    maildir = base / "Maildir" / "new"
    found = [p.read_bytes() for p in maildir.iterdir()] if maildir.exists() else []
    told = [m.split(b"\nX-Popkeep-Alert: ", 1)[1].split(b"\n", 1)[0].strip().decode()
            for m in found if b"\nX-Popkeep-Alert: " in m]  # fmt: skip
    assert len(found) == len(told) and tuple(told) == alerts
    assert dovecot.message_count(user) == count


def test_wrong_password_is_one_clear_line(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(dovecot, dovecot_user, 3, seed=7)
    config = dovecot_config(dovecot, tmp_path, dovecot_user, password="not-the-password")
    capsys.readouterr()
    code = main(["-c", str(config), "fetch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 77
    assert len(err) == 1 and err[0].startswith("isp: FAILED:") and "password" in err[0]
    _assert_nothing_happened(dovecot, dovecot_user, tmp_path, 3, ("signin; raised",))


def test_wrong_certificate_fails_before_the_password(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(dovecot, dovecot_user, 3, seed=8)
    for implicit in (False, True):
        base = tmp_path / str(implicit)
        base.mkdir()
        config = dovecot_config(
            dovecot, base, dovecot_user, implicit=implicit, ca_file=dovecot.wrong_ca_file
        )
        capsys.readouterr()
        code = main(["-c", str(config), "fetch"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 77
        assert len(err) == 1 and "certificate" in err[0].lower(), err
        _assert_nothing_happened(dovecot, dovecot_user, base, 3)
    assert dovecot.auth_attempts(dovecot_user) == 0  # the password never reached Dovecot


_POLL = """
import json, sys
from popkeep.cli import main
code = main(["-c", sys.argv[1], "fetch", "--json"])
print(json.dumps({"code": code, "asyncio": "asyncio" in sys.modules}), file=sys.stderr)
"""


def _poll_in_a_process(config: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``popkeep fetch --json`` in a fresh interpreter: (account JSON, what it loaded)."""
    done = subprocess.run([sys.executable, "-c", _POLL, str(config)],
                          capture_output=True, text=True, timeout=120, check=False)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout)["accounts"][0], loaded


@pytest.mark.parametrize("implicit", [False, True], ids=["stls", "implicit-tls"])
def test_a_poll_with_nothing_new_never_starts_an_event_loop(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, implicit: bool
) -> None:
    """The survey (blocking sockets) hands a session with new mail to asyncio without a
    second login, and ends a poll with nothing new before asyncio is even imported."""
    _fill(dovecot, dovecot_user, 25, seed=9)
    config = dovecot_config(dovecot, tmp_path, dovecot_user, implicit=implicit)
    first, loaded = _poll_in_a_process(config)
    assert (loaded["code"], first["delivered"], loaded["asyncio"]) == (0, 25, True)
    again, loaded = _poll_in_a_process(config)
    assert (loaded["code"], again["delivered"], again["listed"]) == (0, 0, 25)
    assert loaded["asyncio"] is False
    assert dovecot.auth_attempts(dovecot_user) == 2  # one login per poll
    assert digests(maildir_messages(tmp_path / "Maildir")) == digests(
        dovecot.messages(dovecot_user)
    )


def test_one_poll_of_several_accounts(
    dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accounts are surveyed side by side; only those with work go on to the event loop,
    and every result comes back in the config's order."""
    users = [f"multi{i}" for i in range(3)]
    for user in users:
        dovecot.add_user(user)
    _fill(dovecot, users[0], 7, seed=10)
    _fill(dovecot, users[2], 4, seed=11)
    more = "".join(
        account_toml(name=user, port=dovecot.pop3_port, ca_file=dovecot.ca_file, user=user,
                     password=dovecot.password)
        for user in users[1:]
    )
    config = write_config(tmp_path, name=users[0], port=dovecot.pop3_port,
                          ca_file=dovecot.ca_file, user=users[0], password=dovecot.password,
                          extra=more)

    def poll() -> list[tuple[str, int, int]]:
        capsys.readouterr()
        assert main(["-c", str(config), "fetch", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)["accounts"]
        return [(a["account"], a["delivered"], a["listed"]) for a in out]

    assert poll() == [("multi0", 7, 7), ("multi1", 0, 0), ("multi2", 4, 4)]
    _fill(dovecot, users[1], 2, seed=12)
    assert poll() == [("multi0", 0, 7), ("multi1", 2, 2), ("multi2", 0, 4)]
    assert poll() == [("multi0", 0, 7), ("multi1", 0, 2), ("multi2", 0, 4)]
    assert len(maildir_messages(tmp_path / "Maildir")) == 13


def test_identity_checks_cost_a_no_op_poll_nothing_and_agree_with_dovecot(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dovecot never reuses a UIDL: a poll with nothing new sends no TOP and no LIST;
    when the messages are due for deletion, one TOP n 0 each (their sizes match) finds
    each the message collected (the digest of Dovecot's TOP equals that of its RETR),
    so all are deleted and none is fetched again or reported (issue 16 item 2)."""
    from popkeep.sources.pop3 import POP3Session

    asked: list[str] = []
    for name in ("header_digests", "sizes"):
        real = getattr(POP3Session, name)

        def spy(self: POP3Session, numbers: Any, *rest: Any, _r: Any = real, _n: str = name) -> Any:
            asked.extend([_n] * len(numbers))
            return _r(self, numbers, *rest)

        monkeypatch.setattr(POP3Session, name, spy)
    _fill(dovecot, dovecot_user, 25, seed=6)
    config = dovecot_config(dovecot, tmp_path, dovecot_user)
    assert fetch(config, capsys)[1]["delivered"] == 25
    asked.clear()
    code, again = fetch(config, capsys)
    assert (code, again["delivered"], asked) == (0, 0, [])
    config = dovecot_config(dovecot, tmp_path, dovecot_user, delete_after="0s")
    code, data = fetch(config, capsys)
    assert (code, data["delivered"], data["deleted"]) == (0, 0, 25), data
    assert asked.count("header_digests") == 25 and not data.get("warnings"), data
    assert dovecot.message_count(dovecot_user) == 0
    assert len(maildir_messages(tmp_path / "Maildir")) == 25

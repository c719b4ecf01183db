"""``popkeep fetch`` logs in while it finishes starting (cli.quick.poll).

The login of each account begins on a worker thread once the account's lock is
held, before the state database opens; the survey then takes that session over.
Whatever happens to start-up meanwhile, no session is left open and nothing is
deleted, and a login's failure is the account's result like any other.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from popkeep import app as app_module
from popkeep.cli import main
from popkeep.cli.quick.poll import OpenedAhead, drive
from popkeep.errors import AuthError, StateError
from popkeep.model import ServerStat
from popkeep.sources.base import SourceSession
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailgen import demo_mailbox
from popkeep.testing.server import ScriptedPOP3Server

from .integration.helpers import account_toml, save_config, server_config


def _logged_in(server: ScriptedPOP3Server) -> bool:
    return any(session.user for session in server.sessions)


def _login_threads() -> list[threading.Thread]:
    """Login threads still running after each was given 10 s to end."""
    threads = [t for t in threading.enumerate() if t.name.startswith("popkeep-login")]
    for thread in threads:
        thread.join(10)
    return [t for t in threads if t.is_alive()]


def _fetch_json(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["-c", str(config), "fetch", "--json"])
    return code, json.loads(capsys.readouterr().out)["accounts"]


def test_the_login_runs_while_the_state_database_opens(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = server_config(tmp_path, server, certs)
    seen: list[bool] = []
    real_open = app_module.open_store

    def open_store(cfg: Any) -> Any:
        # Opening the store before any login (the old order) times out here.
        seen.append(server.wait_until(lambda: _logged_in(server), timeout=10))
        return real_open(cfg)

    monkeypatch.setattr(app_module, "open_store", open_store)
    code, accounts = _fetch_json(config, capsys)
    assert seen == [True]
    assert code == 0 and accounts[0]["delivered"] == len(demo_mailbox())
    assert len(server.sessions) == 1  # the survey used the early session: one login
    assert server.wait_for_sessions(1) and server.sessions[0].quit
    assert _login_threads() == []


def test_start_up_failing_after_the_login_began_closes_the_session(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = server_config(tmp_path, server, certs, delete_after="0d")

    def open_store(cfg: Any) -> Any:
        assert server.wait_until(lambda: _logged_in(server), timeout=10)
        raise StateError("state database: unreadable (simulated)")

    monkeypatch.setattr(app_module, "open_store", open_store)
    before = len(server.mailbox.snapshot())
    assert main(["-c", str(config), "fetch"]) == StateError.exit_code
    assert "unreadable (simulated)" in capsys.readouterr().err
    assert server.wait_for_sessions(1)  # closed by popkeep, not left to time out
    assert not server.sessions[0].quit and server.sessions[0].retrieved == []
    assert len(server.mailbox.snapshot()) == before
    assert _login_threads() == []


def test_a_failed_login_is_that_accounts_result_and_the_others_go_on(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = save_config(
        tmp_path,
        f'[state]\npath = "{tmp_path / "state.db"}"\n\n[[sink]]\nname = "home"\n'
        f'type = "maildir"\npath = "{tmp_path / "Maildir"}"\n'
        + account_toml(name="good", port=server.port, user="taro", password=server.password,
                       ca_file=certs.ca_file)
        + account_toml(name="bad", port=server.port, user="taro", password="not-it",
                       ca_file=certs.ca_file),
    )
    code, accounts = _fetch_json(config, capsys)
    by_name = {a["account"]: a for a in accounts}
    assert code == AuthError.exit_code
    assert by_name["good"]["ok"] and by_name["good"]["delivered"] == len(demo_mailbox())
    assert not by_name["bad"]["ok"] and by_name["bad"]["outcome"] == "AuthError"
    assert _login_threads() == []


class _Session:
    """Just enough of a SourceSession to count closes."""

    def __init__(self) -> None:
        self.closed = 0

    async def close(self) -> None:
        self.closed += 1

    async def stat(self) -> ServerStat:
        return ServerStat(0, 0)


def test_opened_ahead_hands_over_one_session_then_connects_anew() -> None:
    made: list[_Session] = []

    async def factory() -> SourceSession:
        made.append(_Session())
        return made[-1]  # type: ignore[return-value]

    ahead = OpenedAhead(factory, "x")
    first, second = drive(ahead()), drive(ahead())
    assert first is made[0] and second is made[1] and first is not second
    ahead.discard()  # taken: nothing to close
    assert made[0].closed == 0


@pytest.mark.parametrize("login_ended_first", [True, False])
def test_opened_ahead_closes_an_untaken_session_whenever_its_login_ends(
    login_ended_first: bool,
) -> None:
    gate = threading.Event()
    made: list[_Session] = []

    async def factory() -> SourceSession:
        assert gate.wait(10)
        made.append(_Session())
        return made[-1]  # type: ignore[return-value]

    ahead = OpenedAhead(factory, "x")
    if login_ended_first:
        gate.set()
        assert _login_threads() == []
        ahead.discard()  # closes it here
    else:
        ahead.discard()  # the login is still running: its thread closes it
        gate.set()
        assert _login_threads() == []
    ahead.discard()
    assert [s.closed for s in made] == [1]


def test_opened_ahead_hands_a_login_error_to_its_caller() -> None:
    async def refused() -> SourceSession:
        raise AuthError("[AUTH] invalid user name or password")

    failing = OpenedAhead(refused, "y")
    with pytest.raises(AuthError, match="invalid"):
        drive(failing())
    failing.discard()  # taken (its error was): nothing to close, no second raise

"""``popkeep auth NAME`` and then ``popkeep fetch`` with OAuth 2.0, in-process: the
device-code sign-in against the fake authorization server, XOAUTH2 against the
scripted POP3 server (over STLS), and a revoked sign-in → one line naming the command."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from random import Random

import pytest

from popkeep.app import App
from popkeep.cli import main
from popkeep.clock import FakeClock
from popkeep.collector.job import AccountResult
from popkeep.config import load_config
from popkeep.errors import SignInRequired
from popkeep.service.schedule import after
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.mailgen import demo_mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from .fake_authority import Authority, serve


@pytest.fixture
def authority(certs: TestCerts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    with serve(certs.server_context()) as state:
        yield state


@pytest.fixture
def pop(certs: TestCerts) -> Iterator[ScriptedPOP3Server]:
    """Accepts only the first access token the fake authority issues."""
    server = ScriptedPOP3Server(Mailbox.from_messages(demo_mailbox()), user="taro@outlook.com",
                                password="at-1", tls_context=certs.server_context(),
                                sasl=("PLAIN", "XOAUTH2"))
    with ServerThread(server):
        yield server


def write(tmp_path: Path, pop: ScriptedPOP3Server, authority: Authority, certs: TestCerts) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[state]
path = "{tmp_path / 'state.db'}"

[[sink]]
name = "home"
type = "maildir"
path = "{tmp_path / 'Maildir'}"

[[account]]
name = "outlook"
host = "127.0.0.1"
port = {pop.port}
tls = "starttls"
ca_file = "{certs.ca_file}"
user = "taro@outlook.com"
auth = "oauth2"
oauth = {{ provider = "microsoft", client_id = "client-1", authority = "{authority.base}" }}
""")
    config.chmod(0o600)
    return config


def test_auth_then_fetch_then_a_revoked_sign_in(
    tmp_path: Path, pop: ScriptedPOP3Server, authority: Authority, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write(tmp_path, pop, authority, certs)
    assert main(["-c", str(config), "auth", "outlook", "--device"]) == 0
    out = capsys.readouterr().out.splitlines()
    token_file = tmp_path / "oauth" / "account-outlook.json"
    assert out == [
        "To sign in, open https://microsoft.com/devicelogin and enter the code ABCD-1234.",
        f'outlook: signed in (device); account "outlook": taro@outlook.example; tokens stored '
        f"in {token_file}",
    ]
    assert main(["-c", str(config), "fetch"]) == 0
    assert capsys.readouterr().out.startswith("outlook: 12 new")
    # The fake's access token is short enough for an initial response (RFC 5034 §4).
    raw = base64.b64encode(b"user=taro@outlook.com\x01auth=Bearer at-1\x01\x01")
    assert pop.sessions[0].lines[:4] == [b"CAPA", b"STLS", b"CAPA", b"AUTH XOAUTH2 " + raw]
    assert not pop.received_password("at-1", plaintext_only=True)

    # The refresh token is revoked (the user changed the password, or an admin did).
    cache = json.loads(token_file.read_text())
    for entry in cache["AccessToken"].values():
        entry["expires_on"] = entry["extended_expires_on"] = "1"
    token_file.write_text(json.dumps(cache))
    authority.revoked.add("rt-1")
    assert main(["-c", str(config), "fetch"]) == 77
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('outlook: FAILED: account "outlook": Microsoft refused to renew '
                             "the sign-in: invalid_grant")
    assert err[0].endswith("; run: popkeep auth outlook")
    assert len(pop.sessions) == 1  # no session was opened without a token
    assert main(["-c", str(config), "status"]) == 0
    assert ": sign in again (popkeep auth)" in capsys.readouterr().out


def test_without_a_flag_a_machine_without_a_display_gets_the_device_code(
    tmp_path: Path, pop: ScriptedPOP3Server, authority: Authority, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    config = write(tmp_path, pop, authority, certs)
    assert main(["-c", str(config), "auth", "outlook"]) == 0
    out = capsys.readouterr().out
    assert "enter the code ABCD-1234" in out and "outlook: signed in (device)" in out


def test_auth_of_a_name_without_oauth(
    tmp_path: Path, pop: ScriptedPOP3Server, authority: Authority, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write(tmp_path, pop, authority, certs)
    assert main(["-c", str(config), "auth", "nobody", "--device"]) == 78
    assert "no account or sink is named 'nobody'" in capsys.readouterr().err
    assert main(["-c", str(config), "auth", "home", "--device"]) == 78
    assert "'home' has no oauth table" in capsys.readouterr().err


def test_auth_of_a_gmail_sink_runs_googles_flow_which_needs_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Gmail API sink is told apart from a name without oauth: Google's flow is
    the one asked, and it names the setting it lacks."""
    monkeypatch.setenv("ISP_PASS", "secret")
    config = tmp_path / "config.toml"
    config.write_text(f'[[sink]]\nname = "gmail"\ntype = "gmail"\n'
                      f'token_file = "{tmp_path / "token.json"}"\n'
                      '[[account]]\nname = "isp"\nhost = "pop.example.ne.jp"\n'
                      'user = "taro"\npassword_env = "ISP_PASS"\n')
    config.chmod(0o600)
    assert main(["-c", str(config), "auth", "gmail"]) == 78
    assert ('sink "gmail": set client_secret_file and token_file to use popkeep auth'
            in capsys.readouterr().err)


def test_the_service_holds_the_account_and_its_alert_names_popkeep_auth(
    tmp_path: Path, pop: ScriptedPOP3Server, authority: Authority, certs: TestCerts,
) -> None:
    """Never signed in (or revoked): the pass fails with SignInRequired, which the
    service treats as a refused sign-in: held, and told at once, naming the command."""
    config = load_config(write(tmp_path, pop, authority, certs))
    app = App(config, clock=FakeClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC)))
    alerts = app.alerts()

    async def one_pass() -> AccountResult:
        (result,) = await app.fetch()
        await alerts.pass_finished(config.accounts["outlook"], result)
        return result

    result = asyncio.run(one_pass())
    app.close()
    assert isinstance(result.error, SignInRequired)
    held = after(result.error, 0, config.accounts["outlook"], config.service, Random(1).random)
    assert held.phase == "held" and held.delay is None
    maildir = tmp_path / "Maildir"
    (notice,) = [p.read_bytes() for d in ("new", "cur") for p in (maildir / d).iterdir()]
    body = email.message_from_bytes(notice, policy=email.policy.default)
    assert body["Subject"] == 'popkeep: a sign-in for "outlook" was refused'
    text = body.get_content()
    assert 'account "outlook": no sign-in yet; run: popkeep auth outlook' in text
    assert pop.sessions == []  # no token: the server was never asked


@pytest.mark.parametrize("accepted", ["at-2", "at-9"])
def test_a_refused_access_token_is_renewed_once(
    tmp_path: Path, authority: Authority, certs: TestCerts, accepted: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server refuses the cached token (revoked before it expired): popkeep gets
    a fresh one and signs in again, once. A fresh token refused too is the server's
    answer, with what to check."""
    pop = ScriptedPOP3Server(Mailbox.from_messages(demo_mailbox()), user="taro@outlook.com",
                             password=accepted, tls_context=certs.server_context(),
                             sasl=("PLAIN", "XOAUTH2"))
    with ServerThread(pop):
        config = write(tmp_path, pop, authority, certs)
        assert main(["-c", str(config), "auth", "outlook", "--device"]) == 0
        capsys.readouterr()
        code = main(["-c", str(config), "fetch"])
    sent = [line for s in pop.sessions for line in s.lines if line.startswith(b"AUTH ")]
    tokens = [base64.b64decode(line.split()[2]).split(b"Bearer ")[1][:-2] for line in sent]
    assert tokens == [b"at-1", b"at-2"]  # the cached token, then one renewed
    if accepted == "at-2":
        assert code == 0 and capsys.readouterr().out.startswith("outlook: 12 new")
    else:
        assert code == 77
        err = capsys.readouterr().err
        assert "the access token was refused" in err
        assert "a fresh access token was refused too" in err and "popkeep auth outlook" in err

"""The Microsoft token provider (msal) against the fake authorization server:
device-code sign-in (authorization_pending, slow_down, expired_token), silent
refresh from the stored cache, and a revoked refresh token → SignInRequired."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from popkeep.config.schema import OAuthConfig
from popkeep.errors import AuthError, ConnectError, SignInRequired
from popkeep.oauth import provider
from popkeep.oauth.microsoft import MicrosoftTokens
from popkeep.oauth.store import FileStore
from popkeep.testing.certs import TestCerts

from .browser import install
from .fake_authority import USER, Authority, serve

SCOPE = "https://outlook.office.com/POP.AccessAsUser.All"
#: The tests' sleep records the waits instead of waiting, so msal's own check of
#: the wall clock between polls warns; in real use time.sleep passed that time.
pytestmark = pytest.mark.filterwarnings("ignore:Attempted too soon:UserWarning")


@pytest.fixture
def authority(certs: TestCerts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))  # requests trusts the test CA
    with serve(certs.server_context()) as state:
        yield state


def config(authority: Authority, tmp_path: Path) -> OAuthConfig:
    return OAuthConfig(provider="microsoft", client_id="client-1", scopes=(SCOPE,),
                       token_file=tmp_path / "oauth" / "account-outlook.json",
                       authority=authority.base, owner='account "outlook"')


def tokens(cfg: OAuthConfig, waits: list[float] | None = None) -> MicrosoftTokens:
    record = waits if waits is not None else []
    assert cfg.token_file is not None
    return MicrosoftTokens(cfg, FileStore(cfg.token_file), sleep=record.append)


def test_device_flow_polls_as_told_then_stores_the_tokens(
    authority: Authority, tmp_path: Path
) -> None:
    authority.device_script = ["authorization_pending", "slow_down", "authorization_pending"]
    cfg = config(authority, tmp_path)
    said: list[str] = []
    waits: list[float] = []
    assert tokens(cfg, waits).sign_in("device", said.append) == USER
    assert said == ["To sign in, open https://microsoft.com/devicelogin and enter the code "
                    "ABCD-1234."]
    # RFC 8628 §3.5: wait `interval` between polls, 5 s longer after slow_down.
    assert waits == [1.0, 6.0, 6.0]
    polls = [form for method, path, form in authority.requests if path.endswith("/token")]
    assert len(polls) == 4
    assert polls[0]["grant_type"] == ["urn:ietf:params:oauth:grant-type:device_code"]
    (code_request,) = [f for m, p, f in authority.requests if p.endswith("/devicecode")]
    assert set(code_request["scope"][0].split()) >= {SCOPE, "offline_access"}
    assert cfg.token_file is not None
    assert stat.S_IMODE(cfg.token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.token_file.parent.stat().st_mode) == 0o700
    assert "rt-1" in cfg.token_file.read_text()  # the refresh token is kept


def test_expired_device_code_is_an_auth_error(authority: Authority, tmp_path: Path) -> None:
    authority.device_script = ["authorization_pending", "expired_token"]
    cfg = config(authority, tmp_path)
    with pytest.raises(AuthError, match="sign-in failed: expired_token"):
        tokens(cfg).sign_in("device", lambda _line: None)
    assert cfg.token_file is not None and not cfg.token_file.exists()


def test_access_token_from_the_cache_then_refreshed(authority: Authority, tmp_path: Path) -> None:
    cfg = config(authority, tmp_path)
    tokens(cfg).sign_in("device", lambda _line: None)
    # A new process: the provider reads the saved cache; the token is still valid.
    assert provider(cfg).access_token() == "at-1"
    # Once expired, msal refreshes with the refresh token and the cache is saved again.
    assert cfg.token_file is not None
    cache = json.loads(cfg.token_file.read_text())
    for entry in cache["AccessToken"].values():
        entry["expires_on"] = entry["extended_expires_on"] = "1"
    cfg.token_file.write_text(json.dumps(cache))
    assert provider(cfg).access_token() == "at-2"
    refreshes = [f for m, p, f in authority.requests
                 if p.endswith("/token") and f.get("grant_type") == ["refresh_token"]]
    assert [f["refresh_token"] for f in refreshes] == [["rt-1"]]
    assert "at-2" in cfg.token_file.read_text()


def test_revoked_refresh_token_names_popkeep_auth(authority: Authority, tmp_path: Path) -> None:
    cfg = config(authority, tmp_path)
    tokens(cfg).sign_in("device", lambda _line: None)
    assert cfg.token_file is not None
    cache = json.loads(cfg.token_file.read_text())
    for entry in cache["AccessToken"].values():
        entry["expires_on"] = entry["extended_expires_on"] = "1"
    cfg.token_file.write_text(json.dumps(cache))
    authority.revoked.add("rt-1")
    with pytest.raises(SignInRequired) as info:
        provider(cfg).access_token()
    message = str(info.value)
    assert "\n" not in message and message.endswith("; run: popkeep auth outlook")
    assert message.startswith('account "outlook": Microsoft refused to renew the sign-in: '
                              "invalid_grant")
    assert info.value.name == "outlook" and info.value.exit_code == 77


def test_never_signed_in(authority: Authority, tmp_path: Path) -> None:
    with pytest.raises(SignInRequired, match=r'^account "outlook": no sign-in yet; '
                                             r"run: popkeep auth outlook$"):
        provider(config(authority, tmp_path)).access_token()


def test_browser_flow_redirects_to_localhost_and_stores_the_tokens(
    authority: Authority, tmp_path: Path, certs: TestCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = install(monkeypatch, certs.ca_file)
    cfg = config(authority, tmp_path)
    assert tokens(cfg).sign_in("browser", lambda _line: None) == USER
    (url,) = browser.opened
    assert url.startswith(f"{authority.base}/consumers/oauth2/v2.0/authorize?")
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in url and "code_challenge=" in url  # PKCE
    grants = [f["grant_type"] for m, p, f in authority.requests if p.endswith("/token")]
    assert grants == [["authorization_code"]]
    assert provider(cfg).access_token() == "at-1"


def test_a_sign_in_server_that_does_not_answer_is_a_connect_error(
    authority: Authority, tmp_path: Path
) -> None:
    cfg = config(authority, tmp_path)
    assert cfg.token_file is not None
    provider = MicrosoftTokens(cfg, FileStore(cfg.token_file), timeout=0.3)
    authority.stall.set()
    started = time.monotonic()
    with pytest.raises(ConnectError, match='account "outlook": Microsoft sign-in server'):
        provider.sign_in("device", lambda _line: None)
    assert time.monotonic() - started < 5

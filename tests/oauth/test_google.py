"""The Google token provider (google-auth) against the fake authorization server:
refresh of an expired access token, a revoked refresh token → SignInRequired, and
no device flow for the mail scope."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from popkeep.config.schema import OAuthConfig
from popkeep.errors import ConfigError, SignInRequired
from popkeep.oauth import provider
from popkeep.testing.certs import TestCerts

from .browser import install
from .fake_authority import Authority, serve


@pytest.fixture
def authority(certs: TestCerts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    with serve(certs.server_context()) as state:
        yield state


def config(authority: Authority, tmp_path: Path) -> OAuthConfig:
    return OAuthConfig(provider="google", client_id="id.apps.googleusercontent.com",
                       scopes=("https://mail.google.com/",), client_secret="cs",
                       token_file=tmp_path / "sink-gmail.json", authority=authority.base,
                       owner='sink "gmail"')


def saved(cfg: OAuthConfig, refresh: str, expiry: str = "2000-01-01T00:00:00Z") -> None:
    """What the installed-app flow leaves: google-auth's authorized-user JSON."""
    assert cfg.token_file is not None
    cfg.token_file.write_text(json.dumps({
        "token": "old", "refresh_token": refresh, "client_id": cfg.client_id,
        "client_secret": "cs", "token_uri": "https://oauth2.googleapis.com/token",
        "scopes": list(cfg.scopes), "expiry": expiry}))


def test_expired_token_is_refreshed_at_the_configured_server(
    authority: Authority, tmp_path: Path
) -> None:
    cfg = config(authority, tmp_path)
    saved(cfg, "rt-0")
    assert provider(cfg).access_token() == "at-1"
    ((method, path, form),) = authority.requests
    assert (method, path) == ("POST", "/token")
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["rt-0"]
    assert form["client_id"] == [cfg.client_id] and form["client_secret"] == ["cs"]
    assert cfg.token_file is not None
    assert json.loads(cfg.token_file.read_text())["token"] == "at-1"  # saved for next time
    assert provider(cfg).access_token() == "at-1"  # still valid: no second request
    assert len(authority.requests) == 1


def test_revoked_refresh_token_names_popkeep_auth(authority: Authority, tmp_path: Path) -> None:
    """A Google app left in "Testing" loses its refresh token after 7 days this way."""
    cfg = config(authority, tmp_path)
    saved(cfg, "rt-0")
    authority.revoked.add("rt-0")
    with pytest.raises(SignInRequired) as info:
        provider(cfg).access_token()
    message = str(info.value)
    assert message.startswith('sink "gmail": Google refused to renew the sign-in: invalid_grant')
    assert message.endswith("; run: popkeep auth gmail") and "\n" not in message


def test_no_device_flow_for_mail(authority: Authority, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Google offers no device-code sign-in for mail"):
        provider(config(authority, tmp_path)).sign_in("device", lambda _line: None)
    assert authority.requests == []


def test_browser_flow_redirects_to_localhost_and_stores_the_tokens(
    authority: Authority, tmp_path: Path, certs: TestCerts, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = install(monkeypatch, certs.ca_file)
    cfg = config(authority, tmp_path)
    said: list[str] = []
    assert provider(cfg).sign_in("browser", said.append) == "signed in"
    (url,) = browser.opened
    assert url.startswith(f"{authority.base}/auth?") and "access_type=offline" in url
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A" in url
    assert cfg.token_file is not None
    saved_json = json.loads(cfg.token_file.read_text())
    assert saved_json["refresh_token"] == "rt-1" and saved_json["client_id"] == cfg.client_id
    assert provider(cfg).access_token() == "at-1"

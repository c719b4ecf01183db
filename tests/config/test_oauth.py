"""OAuth 2.0 sign-in in the configuration: ``auth = "oauth2"`` with an ``oauth`` table
(or ``oauth_token_command``), on accounts and IMAP sinks alike (one converter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from popkeep.config.load import load_config
from popkeep.config.schema import OAuthConfig
from popkeep.errors import ConfigError

ENV = {"HOME": "/home/taro", "XDG_DATA_HOME": "/data"}

SINK = """
[[sink]]
name = "home"
type = "maildir"
path = "/srv/mail/taro"
"""

OUTLOOK = """
[[account]]
name = "outlook"
host = "outlook.office365.com"
user = "taro@outlook.com"
auth = "oauth2"
oauth = { provider = "microsoft", client_id = "0000-app" }
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return load_config(path, env=ENV)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value).replace(str(tmp_path / "config.toml"), "FILE")


def test_account_with_microsoft_oauth(tmp_path: Path) -> None:
    config = load(tmp_path, SINK + OUTLOOK)
    account = config.accounts["outlook"]  # type: ignore[attr-defined]
    assert account.auth == "oauth2" and account.server.secret is None
    assert account.server.oauth == OAuthConfig(
        provider="microsoft", client_id="0000-app",
        scopes=("https://outlook.office.com/POP.AccessAsUser.All",),
        token_file=Path("/data/popkeep/oauth/account-outlook.json"),
        owner='account "outlook"')


def test_imap_sink_with_google_oauth_and_its_own_token_file(tmp_path: Path) -> None:
    text = SINK + """
[[sink]]
name = "gmail"
type = "imap"
host = "imap.gmail.com"
user = "taro@gmail.com"
auth = "oauth2"

[sink.oauth]
provider = "google"
client_id = "id.apps.googleusercontent.com"
client_secret = "cs"
token_file = "/home/taro/t.json"

[[account]]
name = "isp"
host = "pop.example.ne.jp"
user = "taro"
password_env = "ISP_PASS"
sinks = ["home", "gmail"]
"""
    sink = load(tmp_path, text).sinks["gmail"]  # type: ignore[attr-defined]
    assert sink.auth == "oauth2"
    assert sink.server.oauth == OAuthConfig(
        provider="google", client_id="id.apps.googleusercontent.com",
        scopes=("https://mail.google.com/",), token_file=Path("/home/taro/t.json"),
        client_secret="cs", owner='sink "gmail"')


def test_state_path_moves_the_default_token_file(tmp_path: Path) -> None:
    config = load(tmp_path, '[state]\npath = "/var/lib/pk/state.db"\n' + SINK + OUTLOOK)
    oauth = config.accounts["outlook"].server.oauth  # type: ignore[attr-defined]
    assert oauth.token_file == Path("/var/lib/pk/oauth/account-outlook.json")


def test_token_command_instead_of_a_table(tmp_path: Path) -> None:
    text = SINK + OUTLOOK.replace(
        'oauth = { provider = "microsoft", client_id = "0000-app" }',
        'oauth_token_command = "oauth2l fetch"').replace('"oauth2"', '"xoauth2"')
    account = load(tmp_path, text).accounts["outlook"]  # type: ignore[attr-defined]
    assert account.auth == "xoauth2" and account.server.oauth is None
    assert account.server.secret.kind == "command"


@pytest.mark.parametrize(("change", "message"), [
    (('auth = "oauth2"\n', ""),
     'account "outlook".oauth: needs an OAuth auth, e.g. auth = "oauth2"'),
    (("oauth = {", 'password = "x"\noauth = {'),
     'account "outlook".password: has no effect with auth = "oauth2"'),
    (('oauth = { provider = "microsoft", client_id = "0000-app" }\n', ""),
     'account "outlook": auth = "oauth2" needs exactly one of oauth, oauth_token_command'),
    (("oauth = {", 'oauth_token_command = "x"\noauth = {'),
     'account "outlook": auth = "oauth2" needs exactly one of oauth, oauth_token_command'),
    (('"microsoft"', '"yahoo"'),
     'account "outlook".oauth.provider: expected one of "google", "microsoft", got "yahoo"'),
    (('client_id = "0000-app"', 'client_id = "0000-app", tenant = "organizations"'), None),
    (('"microsoft", client_id = "0000-app"', '"google", client_id = "a", tenant = "x"'),
     'account "outlook".oauth.tenant: is Microsoft\'s: it has no effect with provider = "google"'),
    (('client_id = "0000-app"', 'client_id = "a", tenant = "bad/../x"'),
     'account "outlook".oauth.tenant: expected consumers, organizations or a tenant id, '
     'got "bad/../x"'),
    (('client_id = "0000-app"', 'client_id = "a", authority = "http://login.example.com"'),
     'account "outlook".oauth.authority: expected an https:// URL (http:// only to '
     '127.0.0.1), got "http://login.example.com"'),
    (('client_id = "0000-app"', 'client_id = "a", token_store = "keyring", token_file = "/t"'),
     'account "outlook".oauth.token_file: has no effect with token_store = "keyring"'),
    (('client_id = "0000-app"', 'client_id = "a", scope = "x"'),
     'account "outlook".oauth.scope: unknown key'),
    ((", client_id = \"0000-app\"", ""),
     'account "outlook".oauth: missing required key "client_id"'),
])
def test_oauth_errors(tmp_path: Path, change: tuple[str, str], message: str | None) -> None:
    text = SINK + OUTLOOK.replace(*change)
    if message is None:
        load(tmp_path, text)
    else:
        assert error(tmp_path, text).startswith(f"FILE: {message}")


def test_loose_file_mode_refuses_an_oauth_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SINK + OUTLOOK)
    path.chmod(0o664)
    with pytest.raises(ConfigError, match="oauth: the file says where a secret comes from"):
        load_config(path, env=ENV)


def test_tls_none_warns_that_the_token_travels_in_clear(tmp_path: Path) -> None:
    config = load(tmp_path, SINK + OUTLOOK + 'tls = "none"\n')
    assert config.warnings == (  # type: ignore[attr-defined]
        f'{tmp_path / "config.toml"}: account "outlook".tls: "none" sends the access token '
        "and all mail unencrypted",)

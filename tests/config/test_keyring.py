"""``password = { keyring = "…" }`` and ``popkeep set-password``, against a
file-backed keyring backend (tests/fixtures/filekeyring.py), never the user's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from click.testing import CliRunner

from popkeep.cli.group import cli
from popkeep.config import load as config_load
from popkeep.config.load import load_config
from popkeep.errors import ConfigError
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..fixtures.filekeyring import FileKeyring
from ..integration.helpers import fetch, save_config


@pytest.fixture
def file_keyring(tmp_path: Path) -> Iterator[FileKeyring]:
    before = keyring.get_keyring()
    backend = FileKeyring(tmp_path / "keyring.json")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


def _config(base: Path, port: int, ca: Path, password: str) -> Path:
    text = (
        f'[state]\npath = "{base / "state.db"}"\n\n[[sink]]\nname = "home"\ntype = "maildir"\n'
        f'path = "{base / "Maildir"}"\n\n[[account]]\nname = "isp"\nhost = "127.0.0.1"\n'
        f'port = {port}\ntls = "starttls"\nca_file = "{ca}"\nuser = "taro"\n{password}\n'
        'sinks = ["home"]\n'
    )
    path = save_config(base, text)
    path.chmod(0o644)  # no password in it: readable is fine
    return path


def test_set_password_stores_it_and_fetch_logs_in_with_it(
    server: ScriptedPOP3Server, certs: TestCerts, tmp_path: Path,
    file_keyring: FileKeyring, capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(tmp_path, server.port, certs.ca_file,
                     'password = { keyring = "popkeep/isp" }')
    typed = f"{server.password}\n{server.password}\n"
    result = CliRunner().invoke(cli, ["-c", str(config), "set-password", "isp"], input=typed)
    assert result.exit_code == 0, result.output
    assert 'isp: password stored in the keyring as "popkeep/isp"' in result.output
    assert server.password not in result.output
    assert file_keyring.get_password("popkeep", "isp") == server.password

    code, data = fetch(config, capsys)
    assert code == 0, data
    assert data["delivered"] == len(server.mailbox.snapshot())


def test_a_missing_keyring_entry_says_how_to_store_one(
    tmp_path: Path, file_keyring: FileKeyring, certs: TestCerts,
) -> None:
    config = load_config(_config(tmp_path, 1110, certs.ca_file,
                                 'password = { keyring = "isp" }'))
    secret = config.accounts["isp"].server.secret
    assert secret is not None and secret.kind == "keyring"
    assert repr(secret) == "SecretSource(keyring isp)"
    with pytest.raises(ConfigError, match=r'account "isp"\.password\.keyring: the keyring has '
                                          r'no password for "isp" \(store one with popkeep '
                                          r"set-password\)"):
        secret.resolve()
    file_keyring.set_password("popkeep", "isp", "from-the-keyring")
    assert secret.resolve() == "from-the-keyring"


def test_set_password_refuses_an_account_whose_password_is_elsewhere(
    tmp_path: Path, certs: TestCerts, file_keyring: FileKeyring,
) -> None:
    config = _config(tmp_path, 1110, certs.ca_file, 'password_env = "ISP_PASS"')
    result = CliRunner().invoke(cli, ["-c", str(config), "set-password", "isp"], input="x\nx\n")
    assert result.exit_code == 78
    assert "'isp' does not take its password from the keyring" in result.output


@pytest.mark.parametrize(("value", "error"), [
    ('{ keyring = "" }', "must not be empty"),
    ('{ keyring = "popkeep/" }', 'expected a keyring entry like "popkeep/isp"'),
    ('{ keychain = "isp" }', "unknown key"),
])
def test_a_wrong_keyring_table_is_refused(
    tmp_path: Path, certs: TestCerts, value: str, error: str,
) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(_config(tmp_path, 1110, certs.ca_file, f"password = {value}"))


def test_without_the_keyring_package_the_config_names_the_extra(
    tmp_path: Path, certs: TestCerts, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = config_load._installed
    monkeypatch.setattr(config_load, "_installed", lambda m: m != "keyring" and real(m))
    with pytest.raises(ConfigError, match=r"pip install 'popkeep\[keyring\]'"):
        load_config(_config(tmp_path, 1110, certs.ca_file, 'password = { keyring = "isp" }'))

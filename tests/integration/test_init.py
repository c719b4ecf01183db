"""`popkeep init` against the test Dovecot: scripted with flags, and driven
through its prompts with pexpect; each ends with a `popkeep fetch` that delivers.

Dovecot's domain has no preset, so init probes the server itself (implicit TLS
and STLS on the port it is given, verified against the test CA via --ca-file).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import keyring
import pexpect
import pytest

from popkeep.cli import main
from popkeep.testing.mailgen import realistic_mailbox

from ..fixtures.dovecot import Dovecot
from ..fixtures.filekeyring import ENV as KEYRING_FILE
from ..fixtures.filekeyring import FileKeyring
from .helpers import fetch, maildir_messages

pytestmark = pytest.mark.dovecot

ROOT = Path(__file__).parents[2]


def _flags(dovecot: Dovecot, user: str, base: Path, *extra: str) -> list[str]:
    return [
        "-c", str(base / "conf" / "config.toml"), "init", "--email", f"{user}@example.test",
        "--host", dovecot.host, "--port", str(dovecot.pop3_port), "--user", user,
        "--ca-file", str(dovecot.ca_file), "--password-from-env", "ISP_PASS",
        "--sink", f"maildir:{base / 'Maildir'}", "--state", str(base / "state.db"),
        "--name", "isp", "--yes", *extra,
    ]


def test_scripted_init_writes_a_private_config_then_fetch_delivers(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    dovecot.add_messages(dovecot_user, realistic_mailbox(3, seed=31))
    monkeypatch.setenv("ISP_PASS", dovecot.password)
    argv = _flags(dovecot, dovecot_user, tmp_path, "--keep", "14d", "--no-baseline")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Found {dovecot.host}:{dovecot.pop3_port} (starttls TLS)" in out
    assert "Logged in: 3 message(s)" in out
    config = tmp_path / "conf" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert 'password_env = "ISP_PASS"' in text and dovecot.password not in text
    assert 'tls = "starttls"' in text and 'delete_after = "14d"' in text

    code, data = fetch(config, capsys)
    assert (code, data["delivered"]) == (0, 3), data
    assert len(maildir_messages(tmp_path / "Maildir")) == 3

    assert main(argv) == 78  # an existing config is never overwritten without --force
    assert "exists; popkeep init does not overwrite it" in capsys.readouterr().err


def test_scripted_init_finds_implicit_tls_and_offers_baseline(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    dovecot.add_messages(dovecot_user, realistic_mailbox(4, seed=32))
    monkeypatch.setenv("ISP_PASS", dovecot.password)
    argv = _flags(dovecot, dovecot_user, tmp_path, "--keep", "30d", "--baseline")
    argv[argv.index(str(dovecot.pop3_port))] = str(dovecot.pop3s_port)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Found {dovecot.host}:{dovecot.pop3s_port} (implicit TLS)" in out
    assert "isp: 4 message(s) on the server marked as collected; popkeep fetch will" in out

    dovecot.add_messages(dovecot_user, realistic_mailbox(1, seed=33))
    code, data = fetch(tmp_path / "conf" / "config.toml", capsys)
    assert (code, data["delivered"]) == (0, 1), data


def test_a_refused_password_in_scripted_mode_fails_with_exit_77_and_writes_nothing(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ISP_PASS", "not-the-password")
    assert main(_flags(dovecot, dovecot_user, tmp_path, "--keep", "14d")) == 77
    assert not (tmp_path / "conf" / "config.toml").exists()


def test_the_wizard_through_its_prompts_then_fetch_delivers(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A user answering every question at a terminal: a wrong password first, the
    keyring (a file-backed test backend), a Maildir, one other device."""
    dovecot.add_messages(dovecot_user, realistic_mailbox(2, seed=34))
    config = tmp_path / "conf" / "config.toml"
    env = {
        **os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHON_KEYRING_BACKEND": "tests.fixtures.filekeyring.FileKeyring",
        KEYRING_FILE: str(tmp_path / "keyring.json"), "COLUMNS": "200",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "popkeep", "-c", str(config), "init", "--host", dovecot.host,
         "--port", str(dovecot.pop3_port), "--ca-file", str(dovecot.ca_file),
         "--state", str(tmp_path / "state.db")],
        env=env, encoding="utf-8", timeout=30, dimensions=(50, 200),
    )
    try:
        child.expect("Your email address: ")
        child.sendline(f"{dovecot_user}@example.test")
        child.expect(r"Found .* \(starttls TLS\)")
        child.expect(r"Login name \[.*\]: ")
        child.sendline(dovecot_user)
        child.expect("Password: ")
        child.sendline("wrong")
        child.expect("The server refused it")
        child.expect("Password again: ")
        child.sendline(dovecot.password)
        child.expect(r"Logged in: 2 message\(s\)")
        child.expect(r"Keep the password in the system keyring\? \[Y/n\]: ")
        child.sendline("")
        child.expect('Password stored in the keyring as "popkeep/example"')
        child.expect(r"Where should mail go.*: ")
        child.sendline(f"maildir:{tmp_path / 'Maildir'}")
        child.expect(r"empty: none\): ")
        child.sendline("laptop=every 5d")
        child.expect(r"planner: Every device sees every message if all delete after at least")
        child.expect(r"Delete mail from the provider's server after \[7d\]: ")
        child.sendline("")
        child.expect(r"Mark it as collected so popkeep delivers only newer mail \[y/N\]: ")
        child.sendline("n")
        child.expect("Next: popkeep fetch")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    text = config.read_text()
    assert 'password = { keyring = "popkeep/example" }' in text
    assert dovecot.password not in text and 'delete_after = "7d"' in text

    before = keyring.get_keyring()
    keyring.set_keyring(FileKeyring(tmp_path / "keyring.json"))  # what init stored in
    try:
        code, data = fetch(config, capsys)
    finally:
        keyring.set_keyring(before)
    assert (code, data["delivered"]) == (0, 2), data


def test_a_provider_without_pop3_is_told_so_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["-c", str(tmp_path / "config.toml"), "init", "--email", "me@icloud.com", "--yes"]
    assert main(argv) == 78
    assert "iCloud Mail offers no POP3" in capsys.readouterr().err
    assert not (tmp_path / "config.toml").exists()


def test_an_oauth_provider_gets_an_oauth_account_and_no_password_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Outlook.com's preset wants OAuth 2.0: with the registered app's client id,
    init writes auth = "oauth2" and says to run popkeep auth; it neither probes nor
    logs in (the sign-in is popkeep auth's), so nothing here leaves 127.0.0.1."""
    config = tmp_path / "config.toml"
    argv = ["-c", str(config), "init", "--email", "taro@outlook.com",
            "--oauth-client-id", "00000000-1111-2222-3333-444444444444",
            "--sink", f"maildir:{tmp_path / 'Maildir'}", "--keep", "14d",
            "--state", str(tmp_path / "state.db"), "--yes"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Next: popkeep auth outlook, then popkeep fetch" in out
    text = config.read_text()
    assert 'host = "outlook.office365.com"' in text and "port = 995" in text
    assert 'auth = "oauth2"' in text
    assert 'provider = "microsoft", client_id = "00000000-1111-2222-3333-444444444444"' in text
    assert "password" not in text.split("[[account]]")[1]


def test_an_unchecked_preset_that_is_wrong_makes_init_look_for_the_server(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A preset (tried with --presets, as a contributor would) saying implicit TLS
    where the server speaks STLS: the login fails on the TLS handshake, and because
    the preset is marked unverified init probes its host and port and goes on."""
    presets = tmp_path / "presets.toml"
    presets.write_text(
        '[[preset]]\nid = "test-isp"\nname = "Test ISP"\ndomains = ["example.test"]\n'
        f'host = "{dovecot.host}"\nport = {dovecot.pop3_port}\ntls = "implicit"\n'
        'user = "local"\nauth = "password"\nquirks = []\nverified = false\n'
        'note = "unverified: a test"\nsources = []\n'
    )
    monkeypatch.setenv("ISP_PASS", dovecot.password)
    config = tmp_path / "config.toml"
    argv = ["-c", str(config), "init", "--presets", str(presets),
            "--email", f"{dovecot_user}@example.test", "--ca-file", str(dovecot.ca_file),
            "--password-from-env", "ISP_PASS", "--sink", f"maildir:{tmp_path / 'Maildir'}",
            "--keep", "14d", "--state", str(tmp_path / "state.db"), "--no-baseline", "--yes"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Provider: Test ISP (preset 'test-isp')" in out
    assert f"{dovecot.host}:{dovecot.pop3_port} (implicit TLS) did not work" in out
    assert f"Found {dovecot.host}:{dovecot.pop3_port} (starttls TLS)" in out
    assert 'name = "test-isp"' in config.read_text()
    assert 'tls = "starttls"' in config.read_text()


def test_init_with_an_imap_central_mailbox_then_fetch_appends_there(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import imaplib
    import ssl

    central = dovecot_user + "c"
    dovecot.add_user(central)
    dovecot.add_messages(dovecot_user, realistic_mailbox(2, seed=35))
    monkeypatch.setenv("ISP_PASS", dovecot.password)
    monkeypatch.setenv("CENTRAL_PASS", dovecot.password)
    argv = _flags(dovecot, dovecot_user, tmp_path, "--keep", "14d", "--no-baseline")
    sink = argv.index("--sink") + 1
    argv[sink] = f"imap:{central}@{dovecot.host}:{dovecot.imaps_port}"
    argv += ["--sink-password-from-env", "CENTRAL_PASS", "--sink-ca-file", str(dovecot.ca_file),
             "--folder", "ISP"]
    assert main(argv) == 0
    text = (tmp_path / "conf" / "config.toml").read_text()
    assert 'type = "imap"' in text and 'password_env = "CENTRAL_PASS"' in text

    code, data = fetch(tmp_path / "conf" / "config.toml", capsys)
    assert (code, data["delivered"]) == (0, 2), data
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=context) as client:
        client.login(central, dovecot.password)
        typ, counted = client.select("ISP", readonly=True)
        assert typ == "OK" and counted == [b"2"]


def test_init_with_the_gmail_api_writes_a_sink_to_authorise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    dovecot: Dovecot, dovecot_user: str,
) -> None:
    client = tmp_path / "client_secret.json"
    client.write_text("{}")
    monkeypatch.setenv("ISP_PASS", dovecot.password)
    argv = _flags(dovecot, dovecot_user, tmp_path, "--keep", "14d", "--no-baseline")
    argv[argv.index("--sink") + 1] = "gmail"
    argv += ["--gmail-client", str(client)]
    assert main(argv) == 0
    assert "Next: popkeep auth gmail, then popkeep fetch" in capsys.readouterr().out
    text = (tmp_path / "conf" / "config.toml").read_text()
    assert 'type = "gmail"' in text and f'client_secret_file = "{client}"' in text

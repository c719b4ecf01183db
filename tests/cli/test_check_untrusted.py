"""``popkeep check`` on an untrusted certificate shows its fingerprint and the exact
``tls_fingerprint`` line that pins it (issue 15 item 6), against the test Dovecot."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import pytest

from popkeep.cli import main

from ..fixtures.dovecot import Dovecot
from ..integration.helpers import dovecot_config, fetch


def _served_fingerprint(dovecot: Dovecot) -> str:
    pem = ssl.get_server_certificate((dovecot.host, dovecot.pop3s_port))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


@pytest.mark.parametrize("implicit", [True, False])
def test_check_shows_the_pin_of_an_untrusted_certificate(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    implicit: bool,
) -> None:
    config = dovecot_config(dovecot, tmp_path, dovecot_user, implicit=implicit, ca_file=None)
    capsys.readouterr()
    code = main(["-c", str(config), "check", "isp"])
    out, err = capsys.readouterr()
    pin = f'tls_fingerprint = "sha256:{_served_fingerprint(dovecot)}"'
    assert code == 77
    assert pin in out.splitlines()[-1]
    assert "certificate verify failed" in err

    # The printed line, pasted into the account, makes the same check succeed.
    config.write_text(config.read_text() + pin + "\n")
    code = main(["-c", str(config), "check", "isp"])
    assert code == 0, capsys.readouterr()


def test_fetch_says_where_to_find_the_fingerprint(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = dovecot_config(dovecot, tmp_path, dovecot_user, implicit=True,
                            ca_file=dovecot.wrong_ca_file)
    code, data = fetch(config, capsys)
    assert code == 77
    assert data["outcome"] == "CertificateUntrusted"
    capsys.readouterr()
    main(["-c", str(config), "fetch"])
    assert "popkeep check ACCOUNT` shows the tls_fingerprint line" in capsys.readouterr().err

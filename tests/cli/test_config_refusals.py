"""What the config rules look like from the command line: one line, exit 78, before any
server is contacted (a missing extra, a file others may write)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import server_config

IMAP_SINK = """
[[sink]]
name = "central"
type = "imap"
host = "127.0.0.1"
user = "u"
password_env = "CENTRAL_PASS"
"""


def test_an_imap_sink_without_imapclient_is_exit_78_at_load(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = server_config(tmp_path, server, certs)
    config.write_text(config.read_text() + IMAP_SINK)
    monkeypatch.setitem(sys.modules, "imapclient", None)  # as if the extra were not installed
    assert main(["-c", str(config), "fetch"]) == 78
    err = capsys.readouterr().err
    assert "pip install 'popkeep[imap]'" in err and "Traceback" not in err
    assert server.sessions == []  # refused before any login


def test_a_config_others_may_write_is_exit_78(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    text = config.read_text()
    assert "password" in text
    config.write_text(text.replace("password =", "password_env = \"X\"\n# password ="))
    config.chmod(0o664)
    assert main(["-c", str(config), "fetch"]) == 78
    assert "run chmod go-w" in capsys.readouterr().err
    assert server.sessions == []

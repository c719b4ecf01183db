"""The command line, in-process: demo, status, schedule, check, and TLS refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailgen import demo_mailbox
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import server_config, write_config


def test_demo_runs_to_completion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "first fetch:  demo: 12 new" in out
    assert "second fetch: demo: 0 new" in out
    assert "資料の送付" in out  # an ISO-2022-JP subject, decoded for display
    assert len(list((tmp_path / "Maildir" / "new").iterdir())) == len(demo_mailbox())
    assert main(["-c", str(tmp_path / "config.toml"), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["accounts"][0]
    assert (status["delivered"], status["on_server"]) == (12, 12)


def test_status_and_schedule_after_a_fetch(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs, delete_after="14d")
    assert main(["-c", str(config), "fetch"]) == 0
    assert capsys.readouterr().out.startswith("isp: 12 new")
    assert main(["schedule", "-c", str(config), "--json"]) == 0
    deletions = json.loads(capsys.readouterr().out)["deletions"]
    assert len(deletions) == 12 and not any(d["due_now"] for d in deletions)
    assert main(["status", "-c", str(config)]) == 0
    assert "12 delivered, 12 on server" in capsys.readouterr().out


def test_check_reports_tls_and_mailbox(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    assert main(["check", "isp", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "TLSv1.3" in out or "TLSv1.2" in out
    assert "mailbox: 12 messages" in out
    assert not (tmp_path / "Maildir").exists() or not any((tmp_path / "Maildir/new").iterdir())
    assert server.mailbox is None or len(server.mailbox.uids) == 12


@pytest.mark.parametrize("server", [{"stls": False}], indirect=True)
def test_starttls_required_but_not_offered(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs, tls="starttls")
    assert main(["-c", str(config), "fetch"]) == 77
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("isp: FAILED:") and "STLS" in err[0]
    assert not server.received_password(server.password)


def test_unknown_account_and_bad_config_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[sink]]\nname = "m"\ntype = "maildir"\npath = "/tmp/x"\n'
        '[[account]]\nname = "isp"\nhost = "h"\nuser = "u"\npassword_env = "P"\n'
        'delete_after = "2 weeks"\n'
    )
    assert main(["-c", str(bad), "fetch"]) == 78
    err = capsys.readouterr().err
    assert str(bad) in err and "delete_after" in err
    missing = tmp_path / "missing.toml"
    assert main(["-c", str(missing), "status"]) == 78
    assert str(missing) in capsys.readouterr().err
    good = write_config(tmp_path, port=1, user="u", password="p")
    assert main(["-c", str(good), "fetch", "nope"]) == 78
    assert "unknown account 'nope'" in capsys.readouterr().err


def test_overlapping_fetch_of_the_same_account_is_refused(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import fcntl
    import hashlib
    import os

    config = server_config(tmp_path, server, certs)
    digest = hashlib.sha256(b"isp").hexdigest()[:16]
    lock = tmp_path / f"state.db.{digest}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # "another popkeep fetch" holds the account
        assert main(["-c", str(config), "fetch"]) == 75
        err = capsys.readouterr().err
        assert "isp: FAILED:" in err and "another process" in err
        assert not (tmp_path / "Maildir").exists()
        assert server.sessions == []  # the lock comes before the connection
    finally:
        os.close(fd)  # the holder ends: the next run collects
    assert main(["-c", str(config), "fetch"]) == 0
    assert capsys.readouterr().out.startswith("isp: 12 new")

"""``popkeep serve`` as a process: SIGTERM mid-fetch against the test Dovecot, then
``popkeep fetch`` completes with no duplicate; SIGHUP with a broken config keeps
the service and its configuration; a fixed one is polled by at once."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.testing import misbehaviour as mb
from popkeep.testing.mailgen import realistic_mailbox
from popkeep.testing.server import ScriptedPOP3Server

from ..alerts.test_alerts import alerts_in
from ..fixtures.dovecot import Dovecot
from ..integration.helpers import dovecot_config, maildir_messages, server_config

#: enough that the pass outlasts the stop grace (0.5 s) after the first staged message
#: even when this test notices it late on a loaded machine: 3,000 took ≈ 0.5 s once
#: the line ends got cheaper (bench/README.md, Round 12), and a late SIGTERM let it end
MESSAGES = 10_000
#: the status API on a free port: 8025, the default, may be taken on a shared machine
LISTEN = 'listen = "127.0.0.1:0"\n'
LOCAL_API = "\n[service]\n" + LISTEN


def _digest(data: bytes) -> str:
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


@contextmanager
def _serving(config: Path) -> Iterator[subprocess.Popen[str]]:
    """``popkeep serve`` with ``config``, killed on the way out if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "popkeep", "-c", str(config), "serve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stopped(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, then the exit, which must be 0; the process's stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _count(maildir: Path) -> int:
    return sum(len(list((maildir / d).iterdir())) for d in ("new", "cur")
               if (maildir / d).is_dir())  # fmt: skip


def _staged(maildir: Path) -> bool:
    return (maildir / "tmp").is_dir() and any((maildir / "tmp").iterdir())


@pytest.mark.dovecot
def test_sigterm_mid_fetch_exits_at_once_and_the_next_fetch_completes_without_duplicates(
    dovecot: Dovecot, dovecot_user: str, tmp_path: Path
) -> None:
    batch = list(realistic_mailbox(MESSAGES, seed=17))
    dovecot.add_messages(dovecot_user, batch)
    config = dovecot_config(dovecot, tmp_path, dovecot_user)
    config.write_text(config.read_text() + LOCAL_API)
    maildir = tmp_path / "Maildir"
    with _serving(config) as proc:
        # staged in tmp/ (committed to new/ in groups of thousands): the pass is under way
        _wait(lambda: _staged(maildir) or proc.poll() is not None, 60, "the first messages")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        sent = time.monotonic()
        _stopped(proc)
        took = time.monotonic() - sent
    assert took < 8, f"{took:.1f} s from SIGTERM to exit"
    assert _count(maildir) < MESSAGES, "the pass was not interrupted; make the mailbox bigger"

    done = subprocess.run([sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    stored = Counter(_digest(m) for m in maildir_messages(maildir))
    assert [d for d, n in stored.items() if n > 1] == []
    assert set(stored) == {_digest(m) for m in batch}


def test_sighup_with_a_broken_config_keeps_serving_and_a_good_one_is_used_at_once(
    tmp_path: Path, server: ScriptedPOP3Server, certs: object
) -> None:
    config = server_config(tmp_path, server, certs)  # type: ignore[arg-type]
    good = config.read_text()
    config.write_text(good + '\n[service]\ninterval = "1h"\n' + LISTEN)
    with _serving(config) as proc:
        assert server.wait_for_sessions(1, timeout=30)
        config.write_text(good + "\n[service\n")  # not TOML
        proc.send_signal(signal.SIGHUP)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "reload:" in line and "not valid TOML" in line, line
        assert "still polling by the configuration loaded before" in line
        assert proc.poll() is None
        config.write_text(good.replace('delete_after = "never"', 'delete_after = "30d"')
                          + '\n[service]\ninterval = "1h"\n' + LISTEN)
        proc.send_signal(signal.SIGHUP)
        assert server.wait_for_sessions(2, timeout=30), "the changed account was not polled"
        _stopped(proc)
    assert len(server.sessions) == 2


def test_a_config_that_does_not_load_ends_serve_at_start_with_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[service]\ninterval = "10s"\n')
    config.chmod(0o600)
    assert main(["-c", str(config), "serve"]) == 78
    err = capsys.readouterr().err
    assert "service.interval: must be at least 1m" in err and len(err.splitlines()) == 1


def test_a_reload_that_turns_the_alerts_on_is_heard_by_the_next_pass(
    tmp_path: Path, server: ScriptedPOP3Server, certs: object
) -> None:
    """SIGHUP changed ``[service]`` (alerts on, in Japanese) and the account: the pass
    that follows at once tells of the refused sign-in under the new settings."""
    server.misbehave = mb.Misbehaviour(auth_error=mb.AUTH_FAILED)
    config = server_config(tmp_path, server, certs)  # type: ignore[arg-type]
    good = config.read_text()
    service = '\n[service]\ninterval = "1h"\n' + LISTEN
    config.write_text(good + service + "alerts = false\n")
    maildir = tmp_path / "Maildir"
    with _serving(config) as proc:
        assert proc.stderr is not None
        held = proc.stderr.readline()  # the first pass has ended: the account is held
        assert "not polled again until its configuration changes" in held, held
        assert _count(maildir) == 0
        config.write_text(good.replace('delete_after = "never"', 'delete_after = "30d"')
                          + service + 'language = "ja"\n')
        proc.send_signal(signal.SIGHUP)
        _wait(lambda: _count(maildir) > 0 or proc.poll() is not None, 30, "the alert")
        _stopped(proc)
    [notice] = alerts_in(maildir)
    assert str(notice["X-Popkeep-Alert"]) == "signin; raised"
    assert "ログインが拒否されました" in str(notice["Subject"])

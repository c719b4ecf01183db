"""Local paths that cannot be made or written: one line and exit 73 (EX_CANTCREAT), never a
temporary failure (75) cron retries forever, never a traceback; nothing deleted on the server."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.config.paths import check_creatable
from popkeep.errors import CannotCreate
from popkeep.spool import SpoolWriter
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.server import ScriptedPOP3Server, ServerThread

from ..integration.helpers import account_toml, save_config, server_config


def test_a_file_where_the_maildir_should_be_is_exit_73(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs, delete_after="0s")
    (tmp_path / "Maildir").write_text("not a directory")
    before = server.mailbox.uids
    assert main(["-c", str(config), "fetch"]) == 73
    assert server.sessions == []  # checked before any login
    err = capsys.readouterr().err
    assert f"maildir {tmp_path / 'Maildir'}: is a file, not a directory" in err
    assert "Traceback" not in err
    assert server.mailbox.uids == before  # nothing deleted


@pytest.mark.parametrize(
    ("folder", "in_the_way"),
    [("", "Maildir/tmp"), ("", "Maildir/new"), ("Lists", "Maildir/.Lists"),
     ("Lists", "Maildir/.Lists/cur")],
)  # fmt: skip
def test_a_file_in_the_way_inside_the_maildir_is_exit_73(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], folder: str, in_the_way: str,
) -> None:
    config = server_config(tmp_path, server, certs, delete_after="0s")
    if folder:
        text = config.read_text().replace('/Maildir"\n', f'/Maildir"\nfolder = "{folder}"\n')
        config.write_text(text)
    blocker = tmp_path / in_the_way
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")
    assert main(["-c", str(config), "fetch"]) == 73
    assert server.sessions == []  # checked before any login
    err = capsys.readouterr().err
    assert f"{blocker}: is a file, not a directory" in err or f"{blocker} is a file" in err
    assert len(server.mailbox.uids) == 12


@pytest.mark.parametrize("command", ["fetch", "status"])
def test_a_state_directory_that_cannot_be_created_is_one_line(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], command: str,
) -> None:
    config = server_config(tmp_path, server, certs)
    (tmp_path / "state").write_text("a file")
    text = config.read_text().replace(str(tmp_path / "state.db"), str(tmp_path / "state/s.db"))
    config.write_text(text)
    assert main(["-c", str(config), command]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create: File exists" in err[0], err


@pytest.mark.parametrize(
    ("make", "directory", "message"),
    [(lambda p: (p / "f").write_text("x"), True, "{p}/f is a file, not a directory"),
     (lambda p: (p / "f").mkdir(), False, "is a directory, not a file"),
     (lambda p: (p / "f").mkdir(), True, None),
     (lambda p: None, True, None), (lambda p: None, False, None)],
)  # fmt: skip
def test_check_creatable(
    tmp_path: Path, make: object, directory: bool, message: str | None
) -> None:
    make(tmp_path)  # type: ignore[operator]
    target = tmp_path / "f" / "box" if message and "{p}" in message else tmp_path / "f"
    if message is None:
        check_creatable(target, "x", directory=directory)
        assert not (tmp_path / "f" / "box").exists()  # checks, creates nothing
        return
    with pytest.raises(CannotCreate) as info:
        check_creatable(target, "x", directory=directory)
    assert message.format(p=tmp_path) in str(info.value)
    assert info.value.exit_code == 73


def test_an_existing_path_is_checked_with_one_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """popkeep serve checks every sink's paths before each poll: a Maildir that is
    there costs one stat, not one per directory above it."""
    deep = tmp_path / "a" / "b" / "c" / "Maildir"
    deep.mkdir(parents=True)
    (tmp_path / "a" / "mbox").write_text("")
    calls: list[object] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: calls.append(p) or real_stat(p, *a, **k))
    check_creatable(deep, "maildir", directory=True)
    check_creatable(tmp_path / "a" / "mbox", "mbox", directory=False)
    assert calls == [deep, tmp_path / "a" / "mbox"]
    with pytest.raises(CannotCreate, match="is a file, not a directory"):
        check_creatable(tmp_path / "a" / "mbox", "maildir", directory=True)


def test_an_mbox_path_that_is_a_directory_is_exit_73(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "box").mkdir()
    text = (f'[state]\npath = "{tmp_path / "state.db"}"\n[[sink]]\nname = "home"\n'
            f'type = "mbox"\npath = "{tmp_path / "box"}"\n')
    config = save_config(tmp_path, text + account_toml(
        port=server.port, user=server.user, password=server.password, ca_file=certs.ca_file))
    assert main(["-c", str(config), "fetch"]) == 73
    assert server.sessions == []  # checked before any login
    assert f"mbox {tmp_path / 'box'}: is a directory, not a file" in capsys.readouterr().err


class _FullDisk:
    """A spool file on a disk that fills up after ``room`` octets (ENOSPC, as write(2))."""

    def __init__(self, room: int) -> None:
        self.room = room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the final flush fails too


def test_a_spill_to_a_full_disk_is_cannot_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **_: _FullDisk(3000))
    writer = SpoolWriter(tmp_path, spill_at=1000)
    writer.write(b"x" * 900)  # held in memory
    with pytest.raises(CannotCreate) as info:
        for _ in range(5):
            writer.write(b"y" * 900)  # spills, then the disk is full
    assert str(info.value) == (
        f"cannot spool a message of 3600 octets so far to {tmp_path}: No space left on device"
    )
    assert info.value.exit_code == 73


def _big_message(size: int) -> bytes:
    line = b"x" * 998 + b"\r\n"
    body = line * (size // len(line))
    return b"From: a@example.org\r\nSubject: big\r\n\r\n" + body


@pytest.mark.parametrize("sink", ["maildir", "mbox"])
def test_fetch_with_a_spool_that_cannot_grow_is_one_line_and_exit_73(
    tmp_path: Path, certs: TestCerts, sink: str
) -> None:
    """A real write failure, from the kernel: the fetch runs with RLIMIT_FSIZE below the
    message's size, so the spill file's write(2) fails with EFBIG, as on a full quota."""
    pop = ScriptedPOP3Server(
        Mailbox.from_messages([_big_message(6 << 20)]), user="taro", password="s3cret-pass",
        tls_context=certs.server_context(),
    )
    with ServerThread(pop):
        store = (f'type = "maildir"\npath = "{tmp_path / "Maildir"}"' if sink == "maildir"
                 else f'type = "mbox"\npath = "{tmp_path / "mbox"}"')
        text = (f'[state]\npath = "{tmp_path / "state.db"}"\n[[sink]]\nname = "home"\n'
                f"{store}\n")
        config = save_config(tmp_path, text + account_toml(
            port=pop.port, user=pop.user, password=pop.password, ca_file=certs.ca_file,
            delete_after="0s"))

        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))

        done = subprocess.run(
            [sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
            capture_output=True, text=True, timeout=120, preexec_fn=limit,
            env={**os.environ, "TMPDIR": str(tmp_path)},
        )
        assert done.returncode == 73, done.stderr
        assert "Traceback" not in done.stderr
        failed = [line for line in done.stderr.splitlines() if "FAILED" in line]
        assert len(failed) == 1 and "cannot spool a message of" in failed[0], done.stderr
        assert "File too large" in failed[0]
        assert len(pop.mailbox.uids) == 1  # nothing deleted


@pytest.mark.parametrize("in_the_way", ["Maildir", "Maildir/cur"])
def test_a_maildir_that_cannot_be_created_at_open_is_cannot_create(
    tmp_path: Path, in_the_way: str
) -> None:
    """The sink's own mkdir says the same as the check before the run (a file put in the
    way after it, or a directory without permission for a user other than root)."""
    import asyncio

    from popkeep.config.schema import MaildirSinkConfig
    from popkeep.sinks.maildir import MaildirSink

    (tmp_path / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / in_the_way).write_text("in the way")
    sink = MaildirSink.from_config(MaildirSinkConfig("home", tmp_path / "Maildir"))
    with pytest.raises(CannotCreate, match=r"cannot create: (File exists|Not a directory)"):
        asyncio.run(sink.open())

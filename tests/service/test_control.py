"""service.json and the commands that use it: ``popkeep check-now`` and ``popkeep status``
asking a running service (a real status API on 127.0.0.1 over a fake service)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from popkeep.cli import main
from popkeep.service import control

from ..integration import helpers
from .fakes import NOW, FakeView, ServedApi, state


def test_the_handle_is_private_and_read_back(tmp_path: Path) -> None:
    handle = control.write_handle(tmp_path / "state", "http://127.0.0.1:8025", "secret")
    path = tmp_path / "state" / control.FILE_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert control.read_handle(tmp_path / "state") == handle
    assert handle.pid == os.getpid()
    assert [p.name for p in path.parent.iterdir()] == [control.FILE_NAME]  # no temp file


def test_a_handle_left_by_a_dead_service_is_no_service(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    handle = control.write_handle(tmp_path, "http://127.0.0.1:8025", "t")
    data = {**handle._asdict(), "pid": int(gone.stdout)}
    (tmp_path / control.FILE_NAME).write_text(json.dumps(data))
    assert control.read_handle(tmp_path) is None


@pytest.mark.parametrize("text", ["", "{", '{"pid": 1}', '{"pid": "x", "url": "u", '
                                  '"token": "t", "started_at": "s"}',
                                  '{"pid": 1, "url": "file:///etc/passwd", "token": "t", '
                                  '"started_at": "s"}'])
def test_a_damaged_handle_is_no_service(tmp_path: Path, text: str) -> None:
    (tmp_path / control.FILE_NAME).write_text(text)
    assert control.read_handle(tmp_path) is None


def test_a_service_removes_only_its_own_handle(tmp_path: Path) -> None:
    first = control.write_handle(tmp_path, "http://127.0.0.1:1", "one")
    second = control.write_handle(tmp_path, "http://127.0.0.1:2", "two")
    control.remove_handle(tmp_path, first)
    assert control.read_handle(tmp_path) == second
    control.remove_handle(tmp_path, second)
    assert not (tmp_path / control.FILE_NAME).exists()


def write_config(base: Path) -> Path:
    """A one-account config ("isp") whose state database lives in ``base``."""
    return helpers.write_config(base, port=1, user="taro", password="pw")


@pytest.fixture
def view() -> FakeView:
    return FakeView([state("isp", quota_octets=1_000_000, error_streak=2,
                           failing_since=NOW - timedelta(hours=3),
                           last_error="connection refused")])


@pytest.fixture
def running(tmp_path: Path, view: FakeView) -> Iterator[ServedApi]:
    """A status API with its service.json in the config's state directory."""
    api = ServedApi(view, token="the-token")
    control.write_handle(tmp_path, api.url, "the-token")
    yield api
    api.close()


def test_check_now_asks_the_running_service(
    tmp_path: Path, running: ServedApi, view: FakeView, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["-c", str(config), "check-now", "isp"]) == 0
    assert capsys.readouterr().out == "polling now: isp\n"
    assert main(["-c", str(config), "check-now"]) == 0
    assert view.asked == [["isp"], []]


def test_check_now_without_a_service_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["-c", str(config), "check-now"]) == 69
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "popkeep serve is not running" in err[0]


def test_check_now_of_an_unknown_account_is_a_config_error(
    tmp_path: Path, running: ServedApi, view: FakeView, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["-c", str(config), "check-now", "nope"]) == 78
    assert "'nope'" in capsys.readouterr().err and view.asked == []


def test_status_shows_what_the_running_service_says(
    tmp_path: Path, running: ServedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["-c", str(config), "status", "--utc"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("isp: never run;")
    assert out[1] == "  service: waiting, next poll 2026-12-05 09:04 UTC"
    assert out[2] == "  failing since 2026-12-05 06:00 UTC (2 failed polls)"
    assert out[3] == "  server: 600.0 KB of 1.0 MB (60%)"
    assert main(["-c", str(config), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["accounts"][0]["account"] == "isp"
    assert data["service"]["accounts"][0]["error_streak"] == 2


def test_status_without_a_service_reads_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    assert main(["-c", str(config), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["service"] is None


def test_status_falls_back_to_the_store_when_the_service_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    control.write_handle(tmp_path, f"http://127.0.0.1:{port}", "t")  # our pid: alive
    config = write_config(tmp_path)
    assert main(["-c", str(config), "status"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("isp: never run;") and "service:" not in captured.out
    assert "did not answer" in captured.err and "state database only" in captured.err

"""Everyday command-line use from cron: ``-q``, ``-v``/``-q`` on either side of the
command, each failure printed once, log lines with a time and the account,
``--log-file``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from popkeep import errors
from popkeep.cli import main
from popkeep.cli.group import click_main
from popkeep.cli.render import size_text
from popkeep.errors import outcome_words
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import server_config, write_config

#: "2026-12-04 22:40:01 INFO [isp] popkeep.pop3.client: …"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ")

Entry = Callable[[list[str]], int]


@pytest.mark.parametrize("entry", [main, click_main], ids=["fast", "click"])
def test_quiet_fetch_prints_only_when_mail_arrived(
    entry: Entry, tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    assert entry(["-q", "-c", str(config), "fetch"]) == 0
    assert capsys.readouterr().out.startswith("isp: 12 new")
    for argv in (["-q", "fetch"], ["fetch", "-q"], ["fetch", "--quiet"]):
        assert entry(["-c", str(config), *argv]) == 0
        assert capsys.readouterr() == ("", ""), argv  # cron sends no mail
    assert entry(["-c", str(config), "fetch"]) == 0  # without -q: the usual line
    assert capsys.readouterr().out.startswith("isp: 0 new")


@pytest.mark.parametrize("entry", [main, click_main], ids=["fast", "click"])
def test_quiet_fetch_still_reports_a_failure(
    entry: Entry, tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, port=server.port, user=server.user, password="wrong",
                          ca_file=certs.ca_file)
    assert entry(["-c", str(config), "fetch", "-q"]) == 77
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("isp: FAILED: ")


@pytest.mark.parametrize(
    "argv", [["-v", "status"], ["status", "-v"], ["status", "--verbose"], ["schedule", "-q"],
             ["-q", "check", "isp"], ["check", "isp", "-vv"]],
)
def test_verbosity_before_or_after_every_command(
    argv: list[str], tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
) -> None:
    config = server_config(tmp_path, server, certs)
    assert main(["-c", str(config), *argv]) == 0


def test_a_failure_is_printed_once(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
) -> None:
    """As the program cron runs: one line for a wrong password, not a log line too."""
    config = write_config(tmp_path, port=server.port, user=server.user, password="wrong",
                          ca_file=certs.ca_file)
    done = subprocess.run([sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 77
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("isp: FAILED: "), done.stderr


def test_log_lines_name_time_and_account(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    assert main(["-c", str(config), "fetch", "-v"]) == 0
    logged = [line for line in capsys.readouterr().err.splitlines() if LOG_LINE.match(line)]
    assert any(" INFO [isp] popkeep." in line for line in logged), logged


@pytest.mark.parametrize("entry", [main, click_main], ids=["fast", "click"])
def test_log_file_takes_the_log_lines(
    entry: Entry, tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    log = tmp_path / "popkeep.log"
    assert entry(["--log-file", str(log), "-c", str(config), "-v", "fetch"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("isp: 12 new") and err == ""
    lines = log.read_text().splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines)
    assert any("[isp] popkeep." in line for line in lines)
    assert server.password not in log.read_text()


def test_unwritable_log_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "no" / "such" / "dir.log"
    for entry in (main, click_main):
        code = entry(["--log-file", str(log), "-c", str(tmp_path / "c.toml"), "fetch"])
        err = capsys.readouterr().err
        assert code == 78 and err.count("\n") == 1 and str(log) in err, err


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is Asia/Tokyo (UTC+9) for the test."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_status_and_schedule_in_local_time_words_and_kb(
    tokyo: None, tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs, delete_after="14d")
    assert main(["-c", str(config), "fetch"]) == 0
    capsys.readouterr()
    assert main(["-c", str(config), "status", "--json"]) == 0
    finished = datetime.fromisoformat(
        json.loads(capsys.readouterr().out)["accounts"][0]["last_run"]["finished_at"])
    assert finished.utcoffset() == timedelta(0)  # --json stays UTC
    local = finished.astimezone(timezone(timedelta(hours=9)))
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert f"last run {local:%Y-%m-%d %H:%M} JST: ok;" in out, out
    assert main(["-c", str(config), "status", "--utc"]) == 0
    assert f"last run {finished:%Y-%m-%d %H:%M} UTC: ok;" in capsys.readouterr().out
    assert main(["-c", str(config), "schedule"]) == 0
    day = (local + timedelta(days=14)).date().isoformat()
    assert capsys.readouterr().out.startswith(f"isp {day}: 12 messages (")
    assert main(["-c", str(config), "schedule", "--utc"]) == 0
    utc_day = (finished + timedelta(days=14)).date().isoformat()
    assert capsys.readouterr().out.startswith(f"isp {utc_day} (UTC): 12 messages (")


def test_a_failed_run_shows_its_outcome_in_words(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, port=server.port, user=server.user, password="wrong",
                          ca_file=certs.ca_file)
    assert main(["-c", str(config), "fetch"]) == 77
    capsys.readouterr()
    assert main(["-c", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert ": wrong password;" in out and "AuthError" not in out, out


@pytest.mark.parametrize(("outcome", "words"), [
    ("ok", "ok"), ("AuthError", "wrong password"), ("ServerBusy", "server busy"),
    ("ConnectError", "connection refused or lost"), ("TLSError", "certificate not trusted"),
    ("MessageAborted", "server sent too much"), ("DeliveryRefused", "delivery refused"),
    ("SomethingNewer", "SomethingNewer"),
])
def test_outcomes_in_words(outcome: str, words: str) -> None:
    assert outcome_words(outcome) == words


def test_every_error_class_has_words() -> None:
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.PopkeepError)]
    assert all(outcome_words(c.__name__) not in ("failed", c.__name__) for c in classes
               if c is not errors.PopkeepError)


@pytest.mark.parametrize(("octets", "shown"), [
    (0, "0 KB"), (4_200, "4.2 KB"), (999_999, "1000.0 KB"), (3_400_000, "3.4 MB"),
])
def test_small_sizes_in_kb(octets: int, shown: str) -> None:
    assert size_text(octets) == shown


@pytest.mark.parametrize("entry", [main, click_main], ids=["fast", "click"])
def test_log_format_json_is_one_event_a_line_with_the_account_and_no_secret(
    entry: Entry, tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    log = tmp_path / "popkeep.log"
    argv = ["--log-format", "json", "--log-file", str(log), "-c", str(config), "-vv", "fetch"]
    assert entry(argv) == 0
    assert capsys.readouterr().out.startswith("isp: 12 new")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    keys = {"time", "level", "logger", "account", "message"}
    assert events and all(set(e) >= keys for e in events)
    assert any(e["account"] == "isp" and e["logger"].startswith("popkeep.") for e in events)
    assert server.password not in log.read_text()

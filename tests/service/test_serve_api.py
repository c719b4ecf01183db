"""``popkeep serve`` as a process with its status API: service.json while it runs,
``popkeep status`` and ``check-now`` through it, /metrics after a poll, gone after SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from popkeep.service import control
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import save_config, server_config
from .test_web import NO_PROXY


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _popkeep(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "popkeep", "-c", str(config), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _polls(url: str) -> float:
    with NO_PROXY.open(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "popkeep_polls_total" and s.labels == {"account": "isp"})


@pytest.fixture
def config(tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts) -> Path:
    """The scripted server's account, polled hourly, the API on a free loopback port."""
    path = server_config(tmp_path, server, certs)
    text = path.read_text()
    return save_config(tmp_path, '[service]\ninterval = "1h"\nlisten = "127.0.0.1:0"\n\n' + text)


@pytest.fixture
def serving(config: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "popkeep", "-c", str(config), "serve"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait(lambda: control.read_handle(tmp_path) is not None or proc.poll() is not None,
              30, "service.json")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_running_service_answers_status_check_now_and_metrics(
    config: Path, serving: tuple[subprocess.Popen[str], Path]
) -> None:
    proc, state_dir = serving
    handle = control.read_handle(state_dir)
    assert handle is not None and handle.pid == proc.pid
    assert handle.url.startswith("http://127.0.0.1:")
    assert (state_dir / control.FILE_NAME).stat().st_mode & 0o777 == 0o600

    _wait(lambda: _polls(handle.url) >= 1, 30, "the first poll")
    status = _popkeep(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    (account,) = json.loads(status.stdout)["service"]["accounts"]
    assert account["account"] == "isp" and account["last_outcome"] == "ok"
    assert account["server"]["messages"] == 12

    asked = _popkeep(config, "check-now", "isp")
    assert (asked.returncode, asked.stdout) == (0, "polling now: isp\n"), asked.stderr
    _wait(lambda: _polls(handle.url) >= 2, 30, "the poll check-now asked for")

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (state_dir / control.FILE_NAME).exists()
    gone = _popkeep(config, "check-now")
    assert gone.returncode == 69 and "popkeep serve is not running" in gone.stderr


def test_a_listen_address_beyond_loopback_is_refused_in_one_line(
    config: Path, tmp_path: Path
) -> None:
    config.write_text(config.read_text().replace('listen = "127.0.0.1:0"',
                                                 'listen = "0.0.0.0:8025"'))
    done = _popkeep(config, "serve")
    assert done.returncode == 78
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a loopback address" in lines[0], done.stderr
    assert not (tmp_path / control.FILE_NAME).exists()

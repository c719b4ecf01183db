"""The Containerfile (docs/running.md, "In a container"), without a container engine.

No image is built here: a build needs a container engine and the base image from
a registry (scripts/container-smoke builds one and runs it where both exist; CI does
not). These tests read the Containerfile and .dockerignore, and run
the image's HEALTHCHECK command against a real ``popkeep serve`` laid out as the
image lays it out (config at $POPKEEP_CONFIG, state under $XDG_DATA_HOME).
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    logical, current = [], ""
    for line in (ROOT / "Containerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1]
            continue
        logical.append(current + line)
        current = ""
    assert not current, "a continuation runs off the end"
    pairs = []
    for text in logical:
        word, _, rest = text.strip().partition(" ")
        pairs.append((word.upper(), rest.strip()))
    return pairs


def _one(name: str) -> str:
    found = [args for word, args in _instructions() if word == name]
    assert len(found) == 1, (name, found)
    return found[0]


def _env() -> dict[str, str]:
    pairs = _one("ENV").split()
    return dict(pair.split("=", 1) for pair in pairs)


def test_it_runs_popkeep_serve_as_an_unprivileged_user() -> None:
    assert json.loads(_one("ENTRYPOINT")) + json.loads(_one("CMD")) == ["popkeep", "serve"]
    user = _one("USER").split(":")[0]
    assert user not in ("root", "0")
    assert "--uid 10001 --user-group --home-dir /state --no-create-home" in _one("RUN")


def test_config_and_state_are_volumes_the_xdg_paths_point_into() -> None:
    assert set(json.loads(_one("VOLUME"))) == {"/config", "/state"}
    env = _env()
    assert env["POPKEEP_CONFIG"] == "/config/config.toml"
    assert env["XDG_DATA_HOME"] == "/state"
    assert "install -d -o popkeep -g popkeep -m 0700 /config /state" in _one("RUN")


def test_it_installs_the_source_tree_with_the_service_extras() -> None:
    assert _one("COPY") == ". /usr/src/popkeep"
    assert "'/usr/src/popkeep[serve,imap,gmail,oauth]'" in _one("RUN")


def test_the_build_context_keeps_what_the_wheel_is_built_from() -> None:
    """.dockerignore ignores everything but what pyproject.toml names."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def kept(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = data["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = ["pyproject.toml", data["project"]["readme"], *data["project"]["license-files"],
              *(f"{p}/__init__.py" for p in wheel["packages"]), *wheel["shared-data"]]
    assert [path for path in needed if not kept(path)] == []
    assert not kept(".venv/bin/python") and not kept(".git/HEAD")
    assert not kept("tests/conftest.py") and not kept("src/popkeep/__pycache__/x.pyc")


def _healthcheck() -> list[str]:
    options, _, command = _one("HEALTHCHECK").partition(" CMD ")
    assert "--interval=60s" in options
    argv: list[str] = json.loads(command)
    assert argv[0] == "python3"
    return [sys.executable, *argv[1:]]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The image's environment over tmp_path: /config and /state as directories."""
    (config_dir := tmp_path / "config").mkdir(mode=0o700)
    (state := tmp_path / "state").mkdir(mode=0o700)
    config = config_dir / "config.toml"
    config.write_text(f"""\
[service]
listen = "127.0.0.1:0"
password_env = "POPKEEP_DASHBOARD"  # as when published: every request needs it or the token

[[sink]]
name = "home"
type = "maildir"
path = "{state / 'Maildir'}"

[[account]]
name = "isp"
host = "127.0.0.1"
port = {_closed_port()}
user = "taro"
password_env = "ISP_PASS"
sinks = ["home"]
""")
    config.chmod(0o600)
    yield {**os.environ, "POPKEEP_CONFIG": str(config), "XDG_DATA_HOME": str(state),
           "ISP_PASS": "secret", "POPKEEP_DASHBOARD": "dashboard-secret"}


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_healthcheck_passes_while_serve_answers_and_fails_otherwise(
    layout: dict[str, str],
) -> None:
    check = _healthcheck()

    def healthy() -> bool:
        return subprocess.run(check, env=layout, capture_output=True, timeout=30).returncode == 0

    assert not healthy()  # not started
    handle = Path(layout["XDG_DATA_HOME"]) / "popkeep" / "service.json"
    proc = subprocess.Popen([sys.executable, "-m", "popkeep", "serve"], env=layout,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: handle.exists() or proc.poll() is not None, 60, "service.json")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert healthy()  # the account fails (nothing listens); the service answers
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert not healthy()  # stopped

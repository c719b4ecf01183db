"""``popkeep --version`` and ``popkeep fetch`` without click: recognised exactly, run alike.

The cron edge's recogniser (popkeep.cli.quick.argv) must read a command line the
way click would, or hand it to click; and a command it runs must print and exit
exactly as the click command does (both call ``runner.fetch``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from popkeep import __version__
from popkeep.cli import main
from popkeep.cli.group import click_main
from popkeep.cli.quick import poll as quickpoll
from popkeep.cli.quick.argv import FastFetch, parse_fast
from popkeep.testing.certs import TestCerts
from popkeep.testing.mailgen import demo_mailbox
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import server_config


@pytest.mark.parametrize(("argv", "expected"), [
    (["--version"], "version"),
    (["fetch"], FastFetch(None, 0, (), False)),
    (["-c", "a.toml", "fetch"], FastFetch("a.toml", 0, (), False)),
    (["--config", "a.toml", "-vv", "fetch", "--json"], FastFetch("a.toml", 2, (), True)),
    (["--config=a.toml", "-v", "--verbose", "fetch", "isp", "work"],
     FastFetch("a.toml", 2, ("isp", "work"), False)),
    (["-c", "a.toml", "fetch", "-c", "b.toml", "isp"], FastFetch("b.toml", 0, ("isp",), False)),
    (["fetch", "isp", "--config", "b.toml", "--json", "work"],
     FastFetch("b.toml", 0, ("isp", "work"), True)),
    (["-q", "fetch"], FastFetch(None, 0, (), False, True)),
    (["fetch", "--quiet", "isp"], FastFetch(None, 0, ("isp",), False, True)),
    (["-v", "fetch", "-vv"], FastFetch(None, 3, (), False)),
    (["--log-file", "p.log", "fetch"], FastFetch(None, 0, (), False, False, "p.log")),
    (["--log-file=p.log", "-q", "fetch", "-v"], FastFetch(None, 1, (), False, True, "p.log")),
])
def test_recognised_command_lines(argv: list[str], expected: object) -> None:
    assert parse_fast(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["fetch", "--help"], ["-h"], ["status"], ["--version", "fetch"],
    ["fetch", "--jsn"], ["fetch", "--"], ["fetch", "-"], ["-x", "fetch"], ["-c"],
    ["fetch", "-c"], ["-cfile.toml", "fetch"], ["-vc", "a.toml", "fetch"], ["v-", "fetch"],
    ["--config=", "fetch"], ["-c", "/", "fetch"], ["plan", "fetch"], ["-vq", "fetch"],
    ["fetch", "-qq"], ["fetch", "--log-file", "p.log"], ["--log-file", "/", "fetch"],
    ["--log-file=", "fetch"], ["--log-file"], ["fetch", "--quiet=1"],
])
def test_anything_else_goes_to_click(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def test_version_without_click(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    fast = capsys.readouterr().out
    assert click_main(["--version"]) == 0
    assert capsys.readouterr().out == fast == f"popkeep, version {__version__}\n"


def test_fetch_command_line_does_not_import_click(tmp_path: Path) -> None:
    """A whole ``popkeep fetch`` (config error: no file) in a fresh interpreter."""
    code = (
        "import sys; from popkeep.cli import main; rc = main(['-c', sys.argv[1], 'fetch']);"
        "print(rc, 'click' in sys.modules, 'popkeep.planner' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing.toml")],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["78", "False", "False"], done
    assert "missing.toml" in done.stderr


def _interrupted(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


def test_fast_and_click_fetch_print_and_exit_alike(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = server_config(tmp_path, server, certs)
    runs = []
    for entry in (main, click_main, main, click_main):
        code = entry(["-c", str(config), "fetch", "--json"])
        runs.append((code, capsys.readouterr()))
    first = json.loads(runs[0][1].out)["accounts"][0]
    assert runs[0][0] == 0 and first["delivered"] == len(demo_mailbox())
    again = [json.loads(r[1].out)["accounts"][0] for r in runs[1:]]
    assert all(code == 0 for code, _ in runs)
    assert [a["delivered"] for a in again] == [0, 0, 0]
    for entry in (main, click_main):
        assert entry(["-c", str(config), "fetch", "nosuch"]) == 78
        err = capsys.readouterr().err
        assert err.startswith("popkeep: ") and "nosuch" in err
    with monkeypatch.context() as patch:
        patch.setattr(quickpoll, "poll", _interrupted)
        assert main(["-c", str(config), "fetch"]) == click_main(["-c", str(config), "fetch"]) == 130
        assert capsys.readouterr().err == "\nAborted.\n" * 2
    assert main(["-c", str(config), "fetch"]) == 0
    fast_out = capsys.readouterr()
    assert click_main(["-c", str(config), "fetch"]) == 0
    assert capsys.readouterr() == fast_out


def test_fast_path_process_flushes_everything_before_it_exits(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
) -> None:
    """As a program (``python -m popkeep``) the fast path ends with ``os._exit``: the
    output must still be complete and the exit code right."""
    config = server_config(tmp_path, server, certs)

    def popkeep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "popkeep", *args], capture_output=True,
                              text=True, timeout=60, check=False)

    version = popkeep("--version")
    assert (version.returncode, version.stdout) == (0, f"popkeep, version {__version__}\n")
    fetched = popkeep("-c", str(config), "-v", "fetch", "--json")
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(fetched.stdout)["accounts"][0]["delivered"] == len(demo_mailbox())
    assert "INFO" in fetched.stderr  # -v logging reached stderr before the exit
    missing = popkeep("-c", str(tmp_path / "nope.toml"), "fetch")
    assert missing.returncode == 78 and "nope.toml" in missing.stderr

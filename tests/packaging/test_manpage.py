"""popkeep(1), docs/man/popkeep.1: generated from the command line, never stale,
and valid roff (groff from Debian's groff-base: scripts/install-test-deps)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

from popkeep.cli.group import cli

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "man" / "popkeep.1"
SCRIPT = ROOT / "scripts" / "manpage.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manpage", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _groff() -> str:
    """groff's path; missing fails the run under CI=true and skips it otherwise."""
    found = shutil.which("groff")
    if found is None:
        message = "groff is not installed: run scripts/install-test-deps"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_the_committed_page_is_what_the_command_line_generates() -> None:
    """Run as scripts/man runs it (a fresh interpreter); after changing a command's
    options or help (or a click upgrade that words them differently), run scripts/man."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--stdout"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout == PAGE.read_text(encoding="ascii"), "stale: run scripts/man"


def test_groff_renders_it_without_a_warning() -> None:
    done = subprocess.run([_groff(), "-man", "-ww", "-Tutf8", "-P-cbou", str(PAGE)],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    text = done.stdout
    ctx = click.Context(cli, info_name="popkeep")
    for name in cli.list_commands(ctx):
        assert f"popkeep {name} [OPTIONS]" in text, name
    assert "popkeep fetch [OPTIONS] [ACCOUNTS]..." in text
    assert "--log-format [text|json]" in text
    assert "built-in POP3 server → local Maildir" in text  # non-ASCII as \[u2192]


def test_every_option_of_every_command_is_on_the_page() -> None:
    page = PAGE.read_text(encoding="ascii")
    ctx = click.Context(cli, info_name="popkeep")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                for opt in param.opts + param.secondary_opts:
                    assert f"\\fB{opt.replace('-', chr(92) + '-')}\\fR" in page, (name, opt)


@pytest.mark.parametrize(("text", "roff"), [
    ("a \\ b", "a \\e b"),
    ("-c, --log-file and read-only", "\\-c, \\-\\-log\\-file and read-only"),
    ("(-vv for debug)", "(\\-vv for debug)"),
    ("→ ≈ ぷらら", "\\[u2192] \\[u2248] \\[u3077]\\[u3089]\\[u3089]"),
    ("run `popkeep serve` now", "run \\fBpopkeep serve\\fR now"),
])
def test_escape(text: str, roff: str) -> None:
    assert _generator().escape(text) == roff


def test_a_line_starting_with_a_control_character_is_text() -> None:
    lines = list(_generator()._prose(".config and 'quoted' words\n\nsecond"))
    assert lines == ["\\&.config and 'quoted' words", ".PP", "second"]

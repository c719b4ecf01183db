"""Shell completion (click's) through the installed ``popkeep`` script (docs/cli.md).

The completion scripts call ``popkeep`` with no arguments and ``_POPKEEP_COMPLETE``
set, so they pass through the cron edge (:mod:`popkeep.cli.quick`) to click; these
tests run the console script pip wrote, as a shell would, and each shell's own
script in that shell (bash, zsh, fish from Debian's packages:
scripts/install-test-deps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

POPKEEP = Path(sys.executable).with_name("popkeep")


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with the installed popkeep first on PATH and ``env`` added."""
    path = f"{POPKEEP.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path, **env})
    assert done.returncode == 0, done.stderr
    return done


def _shell(name: str) -> str:
    """The shell's path; missing fails the run under CI=true and skips it otherwise."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run scripts/install-test-deps"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _complete(words: str, cword: int) -> list[str]:
    """What ``popkeep`` offers for bash at word ``cword`` of ``words``."""
    done = _run([str(POPKEEP)], _POPKEEP_COMPLETE="bash_complete",
                COMP_WORDS=words, COMP_CWORD=str(cword))
    return done.stdout.splitlines()


def test_the_installed_script_offers_fetch() -> None:
    assert POPKEEP.is_file()
    assert "plain,fetch" in _complete("popkeep fe", 1)


def test_options_are_offered_for_the_group_and_a_lazily_loaded_command() -> None:
    assert "plain,--config" in _complete("popkeep --con", 1)
    assert _complete("popkeep fetch --j", 2) == ["plain,--json"]
    assert "plain,--device" in _complete("popkeep auth isp --dev", 3)


def test_every_command_is_offered() -> None:
    offered = {line.removeprefix("plain,") for line in _complete("popkeep ", 1)}
    assert {"fetch", "serve", "init", "status", "check-now", "set-password"} <= offered


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_a_script_that_calls_back(shell: str) -> None:
    script = _run([str(POPKEEP)], _POPKEEP_COMPLETE=f"{shell}_source").stdout
    assert f"_POPKEEP_COMPLETE={shell}_complete" in script
    assert "_popkeep_completion" in script


def test_bash_runs_its_script() -> None:
    code = ('source <(_POPKEEP_COMPLETE=bash_source popkeep); COMP_WORDS=(popkeep fe); '
            'COMP_CWORD=1; _popkeep_completion popkeep; printf "%s\\n" "${COMPREPLY[@]}"')
    assert _run([_shell("bash"), "--norc", "-c", code]).stdout.split() == ["fetch"]


def test_zsh_runs_its_script() -> None:
    # compsys needs an interactive shell; the functions the script calls to offer
    # words are replaced by ones that print them.
    code = ('compdef() { : }; _describe() { print -rl -- "${(@P)3}" }; '
            'compadd() { print -rl -- "${(@P)${@[-1]}}" }; '
            'eval "$(_POPKEEP_COMPLETE=zsh_source popkeep)"; '
            'words=(popkeep fe); CURRENT=2; _popkeep_completion')
    out = _run([_shell("zsh"), "-f", "-c", code]).stdout.splitlines()
    assert [line.split(":")[0] for line in out] == ["fetch"]


def test_fish_runs_its_script() -> None:
    code = '_POPKEEP_COMPLETE=fish_source popkeep | source; complete -C "popkeep fe"'
    out = _run([_shell("fish"), "--no-config", "-c", code]).stdout.splitlines()
    assert [line.split("\t")[0] for line in out] == ["fetch"]


CONFIG = """\
[[sink]]
name = "home"
type = "maildir"
path = "~/Mail"

[[account]]
name = "isp"
host = "pop.example.ne.jp"

[[account]]
name = "work"
host = "pop.example.com"
no_such_key = 1   # a mistake elsewhere in the file: names still complete
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def _offered(words: str, **env: str) -> list[str]:
    """What bash is offered for the last word of ``words`` (after a space: a new word)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    done = _run([str(POPKEEP)], _POPKEEP_COMPLETE="bash_complete",
                COMP_WORDS=words, COMP_CWORD=str(cword), **env)
    assert done.stderr == ""
    return [line.removeprefix("plain,") for line in done.stdout.splitlines() if line]


def test_account_names_come_from_the_config_the_command_would_read(config: Path) -> None:
    assert _offered(f"popkeep -c {config} fetch ") == ["isp", "work"]
    assert _offered(f"popkeep fetch -c {config} ") == ["isp", "work"]
    assert _offered("popkeep check w", POPKEEP_CONFIG=str(config)) == ["work"]
    for command in ("check-now", "retry", "baseline"):
        assert _offered(f"popkeep -c {config} {command} i") == ["isp"], command
    assert _offered(f"popkeep -c {config} import-state mpop f --account ") == ["isp", "work"]


def test_a_name_already_given_is_not_offered_again(config: Path) -> None:
    assert _offered(f"popkeep -c {config} fetch isp ") == ["work"]


def test_auth_and_set_password_offer_sinks_too(config: Path) -> None:
    assert _offered(f"popkeep -c {config} auth ") == ["isp", "work", "home"]
    assert _offered(f"popkeep -c {config} set-password h") == ["home"]


def test_no_config_or_a_broken_one_offers_nothing_and_says_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[account]\nname = ")
    assert _offered(f"popkeep -c {broken} fetch ") == []
    assert _offered(f"popkeep -c {tmp_path / 'missing.toml'} fetch ") == []
    assert _offered(f"popkeep -c {tmp_path} fetch ") == []  # a directory


def test_fish_completes_account_names(config: Path) -> None:
    code = ("_POPKEEP_COMPLETE=fish_source popkeep | source; "
            f'complete -C "popkeep -c {config} fetch "')
    out = _run([_shell("fish"), "--no-config", "-c", code]).stdout.splitlines()
    assert [line.split("\t")[0] for line in out] == ["isp", "work"]

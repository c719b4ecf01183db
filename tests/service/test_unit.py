"""``popkeep install-service``: the systemd unit passes ``systemd-analyze verify``
with no complaint, for the user manager and the system one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from popkeep.cli import main

from ..integration.helpers import save_config

ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    ANALYZE is None and not os.environ.get("CI"),
    reason="systemd-analyze is missing: run scripts/install-test-deps",
)


def _config(tmp_path: Path, maildir: str = "Maildir") -> Path:
    return save_config(tmp_path, (
        f'[state]\npath = "{tmp_path / "state" / "state.db"}"\n\n'
        f'[[sink]]\nname = "home"\ntype = "maildir"\npath = "{tmp_path / maildir}"\n\n'
        '[[account]]\nname = "isp"\nhost = "127.0.0.1"\nuser = "taro"\npassword = "pw"\n'
    ))  # fmt: skip


def _verify(unit: Path, *, user: bool, tmp_path: Path) -> str:
    """``systemd-analyze verify``'s complaints (stdout and stderr); fails on an error."""
    assert ANALYZE is not None, "systemd-analyze is missing: run scripts/install-test-deps"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    done = subprocess.run(
        [ANALYZE, *(["--user"] if user else []), "verify", str(unit)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_systemd
def test_the_user_unit_verifies_and_names_what_it_may_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "Mail dir 100% $HOME")
    units = tmp_path / "units"
    assert main(["-c", str(config), "install-service", "--unit-dir", str(units)]) == 0
    assert "systemctl --user daemon-reload" in capsys.readouterr().out
    unit = units / "popkeep.service"
    assert _verify(unit, user=True, tmp_path=tmp_path) == ""
    assert _verify(unit, user=False, tmp_path=tmp_path) == ""
    text = unit.read_text()
    assert f'ReadWritePaths="-{tmp_path / "state"}" "-{tmp_path}/Mail dir 100%% $HOME"\n' in text
    assert f'"-c" "{config}" "serve"\n' in text
    for line in ("ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict",
                 "ProtectHome=read-only", "NoNewPrivileges=yes", "PrivateTmp=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "RestartPreventExitStatus=78", "WantedBy=default.target"):
        assert f"\n{line}\n" in text, line
    assert "User=" not in text


@needs_systemd
def test_the_system_unit_runs_as_a_service_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    assert main(["-c", str(config), "install-service", "--system", "--user", "mail",
                 "--print"]) == 0  # fmt: skip
    unit = tmp_path / "popkeep.service"
    unit.write_text(capsys.readouterr().out)
    assert _verify(unit, user=False, tmp_path=tmp_path) == ""
    text = unit.read_text()
    assert "\nUser=mail\nGroup=mail\n" in text and "\nWantedBy=multi-user.target\n" in text


def test_a_different_unit_is_not_replaced_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    (units / "popkeep.service").write_text("[Service]\nExecStart=/bin/true\n")
    assert main(["-c", str(config), "install-service", "--unit-dir", str(units)]) == 73
    assert "exists and differs; add --force" in capsys.readouterr().err
    assert main(["-c", str(config), "install-service", "--unit-dir", str(units), "--force"]) == 0
    assert "popkeep" in (units / "popkeep.service").read_text()

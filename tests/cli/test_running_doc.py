"""docs/running.md: the documented systemd units and cron line run ``popkeep fetch``
as documented (quiet, on the fast path) and the units are well-formed."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

from popkeep.cli.quick.argv import FastFetch, parse_fast

DOC = Path(__file__).parents[2] / "docs" / "running.md"


def _units() -> dict[str, configparser.ConfigParser]:
    units = {}
    for block in re.findall(r"```ini\n(.*?)```", DOC.read_text(), re.S):
        name = re.search(r"# ~/.config/systemd/user/(\S+)", block)
        assert name is not None, block
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(block)
        units[name.group(1)] = parser
    return units


def test_documented_units_run_a_quiet_fetch() -> None:
    units = _units()
    assert set(units) == {"popkeep.service", "popkeep.timer"}
    service, timer = units["popkeep.service"], units["popkeep.timer"]
    assert service["Service"]["Type"] == "oneshot"  # never started again while running
    assert "75" in service["Service"]["SuccessExitStatus"].split()
    argv = shlex.split(service["Service"]["ExecStart"])
    assert argv[0].endswith("/popkeep")
    assert parse_fast(argv[1:]) == FastFetch(None, 0, (), False, quiet=True)
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert timer["Timer"]["OnUnitInactiveSec"]


def test_documented_cron_lines_run_on_the_fast_path() -> None:
    text = DOC.read_text()
    cron = re.search(r"```cron\n\S+ \S+ \S+ \S+ \S+ (.*)\n```", text)
    assert cron is not None
    assert parse_fast(shlex.split(cron.group(1))[1:]) == FastFetch(None, 0, (), False, True)
    logged = re.search(r"`(popkeep --log-file \S+ -q fetch)`", text)
    assert logged is not None
    call = parse_fast(shlex.split(logged.group(1))[1:])
    assert isinstance(call, FastFetch) and call.quiet and call.log_file

"""The benchmark's A/B mode: a second popkeep build as a tool, and its report section."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import report  # noqa: E402
import tools  # noqa: E402


def record(tool: str, wall: float, run: int, load: float = 1.0) -> harness.Record:
    return harness.Record("noop", "tls", tool, run, wall, wall / 2, 40.0, 0, True, True, "ok",
                          load1=load)  # fmt: skip


def test_old_build_is_a_tool_run_in_the_same_alternation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POPKEEP_OLD_BIN", "")  # restored (unset) after the test
    args = harness.parse_args(["--old-bin", "/opt/old/bin/popkeep", "--tools", "popkeep,raw"])
    assert args.tools == ["popkeep", "popkeep-old", "raw"]
    old = tools.TOOLS["popkeep-old"]
    assert isinstance(old, tools.Popkeep) and old.binary == "/opt/old/bin/popkeep"
    run = tools.Run(Path("/nonexistent"), tools.Server("h", 1, False, Path("ca"), "u", "p"))
    monkeypatch.setattr(tools, "make_maildir", lambda path: None)
    monkeypatch.setattr(tools, "_write_private", lambda path, text: path)
    assert old.prepare(run).argv[0] == "/opt/old/bin/popkeep"
    assert tools.TOOLS["popkeep"].prepare(run).argv[0] != "/opt/old/bin/popkeep"


def test_ab_section_gives_new_over_old_and_over_raw_in_milliseconds() -> None:
    records = [
        *(record("popkeep", w, i, load=2.5) for i, w in enumerate((0.0905, 0.0911, 0.0990))),
        *(record("popkeep-old", w, i, load=0.5) for i, w in enumerate((0.0880, 0.0870, 0.0900))),
        *(record("raw", w, i) for i, w in enumerate((0.080, 0.081, 0.082))),
    ]
    old = {
        "version_cpu_s": 0.020,
        "version_wall_s": 0.03,
        "noop_cpu_s": 0.044,
        "noop_wall_s": 0.05,
        "instructions": {"version": 124e6, "noop": 234e6},
    }
    startup = {
        "version_cpu_s": 0.021,
        "version_wall_s": 0.03,
        "noop_cpu_s": 0.045,
        "noop_wall_s": 0.05,
        "runs": 20,
        "load": [0.2, 0.4],
        "instructions": {"version": 130e6, "noop": 240e6},
        "builds": {"popkeep-old": old},
    }
    text = report.ab_section(records, startup)
    assert "| noop tls | 91.1 | 88.0 | 1.035 | 1.125 | 1.086 | 45.5 | 44.0 | 0.5–2.5 | 3 |" in text
    assert "| no-op fetch CPU | 45.0 | 44.0 | 1.023 |" in text
    assert "| instructions, version (callgrind) | 130.0 M | 124.0 M | 1.048 |" in text
    assert "(load 0.2–0.4)" in text
    assert report.ab_section([r for r in records if r.tool != "popkeep-old"], startup) == ""


def test_no_op_rounds_start_with_another_tool_each_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As in the bulk runs: neither build is always the first poll after the priming."""
    order: list[str] = []

    def timed(bench: object, tool: tools.Tool, *rest: object) -> harness.Record:
        order.append(tool.name)
        return record(tool.name, 0.1, 0)

    monkeypatch.setattr(harness, "fill", lambda bench, corpus: None)
    monkeypatch.setattr(harness, "prime", lambda *a: tmp_path)
    monkeypatch.setattr(harness, "timed_run", timed)
    monkeypatch.setattr(harness, "server_for", lambda *a: None)
    monkeypatch.setattr(harness.measure, "remove_tree", lambda path: None)
    monkeypatch.setenv("POPKEEP_OLD_BIN", "")
    args = harness.parse_args(["--tools", "popkeep,raw", "--old-bin", "/old", "--runs", "3"])
    bench = harness.Bench(args, None, {"m20k": None})  # type: ignore[arg-type,dict-item]
    harness.noop(bench, "noop", "plain")
    assert order == ["popkeep", "popkeep-old", "raw", "popkeep-old", "raw", "popkeep",
                     "raw", "popkeep", "popkeep-old"]  # fmt: skip

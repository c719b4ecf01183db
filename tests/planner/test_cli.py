"""``popkeep plan`` in-process: text, JSON (schema as documented), plots, --from-state."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from popkeep.cli import cli
from popkeep.cli.plan import read_history
from popkeep.errors import StateError
from popkeep.planner.history import HistoryRecord, measure
from popkeep.planner.model import DAY

DOCS = Path(__file__).resolve().parents[2] / "docs" / "planner.md"

STORY = """
retention = "14d"
horizon = "30d"
start = "2027-01-01"
messages = ["day 1 09:12"]
[[device]]
name = "phone"
checks = "daily 09:15"
[[device]]
name = "desktop"
checks = "day 7 20:00"
[[device]]
name = "laptop"
checks = "day 18 20:00"
"""

BUSY = """
retention = "14d"
quota = "1GB"
mail = { per_day = 40, mean_size = "80KB", size_sigma = 1.2 }
horizon = "120d"
start = "2027-01-01"
[[device]]
name = "phone"
checks = "every 2h, 07:00-23:00"
[[device]]
name = "desktop"
checks = "daily 20:00"
off = ["2027-01-10..2027-01-20"]
[[device]]
name = "laptop"
checks = "every 18d"
"""


@pytest.fixture
def story(tmp_path: Path) -> Path:
    path = tmp_path / "story.toml"
    path.write_text(STORY)
    return path


@pytest.fixture
def busy(tmp_path: Path) -> Path:
    path = tmp_path / "busy.toml"
    path.write_text(BUSY)
    return path


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["plan", *args], catch_exceptions=False)


def test_text_tells_the_story_and_recommends(story: Path) -> None:
    result = run(str(story))
    assert result.exit_code == 0, result.output
    assert "laptop" in result.output
    assert ("The laptop misses 1 message. The first one: arrived day 1 09:12, the phone fetched "
            "it day 1 09:15, the phone deleted it day 15 09:15") in result.output
    assert re.search(r"^laptop\s+14d\s+1\s+0\s+1\s+0\s+17d20h$", result.output, re.M)
    assert "Recommended: set every device to delete after 19d." in result.output


def test_flags_override_the_file(story: Path) -> None:
    result = run(str(story), "--retention", "19d", "--json")
    data = json.loads(result.output)
    assert [d["missed"] for d in data["devices"]] == [0, 0, 0]
    assert data["devices"][0]["retention_s"] == 19 * DAY


def test_flags_alone_make_a_scenario() -> None:
    result = run("--per-day", "20", "--mean-size", "50KB", "--retention", "3d", "--horizon", "30d",
                 "--quota", "10MB", "--device", "phone=every 1h", "--device", "laptop=every 10d",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["name"] for d in data["devices"]] == ["phone", "laptop"]
    assert data["devices"][1]["missed"] > 0
    assert data["quota"]["limit"] == 10_000_000


def test_conflict_recommends_the_central_collector() -> None:
    result = run("--per-day", "100", "--mean-size", "100KB", "--retention", "14d",
                 "--horizon", "90d", "--quota", "50MB", "--device", "phone=every 1h",
                 "--device", "laptop=every 20d")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Both cannot hold" in result.output
    assert "central-collector setup" in result.output
    assert "The mailbox first fills on day" in result.output
    data = json.loads(run("--per-day", "100", "--mean-size", "100KB", "--retention", "14d",
                          "--horizon", "90d", "--quota", "50MB", "--device", "phone=every 1h",
                          "--device", "laptop=every 20d", "--json").output)  # fmt: skip
    rec = data["recommendation"]
    assert rec["central_collector"] is True and rec["compatible"] is False
    assert rec["largest_under_quota_s"] == 4 * DAY  # 0.9 × 50MB / 10MB a day
    assert rec["collector_retention_s"] == 4 * DAY
    assert 0 < rec["collector_peak"] <= 50_000_000


def keys(value: Any) -> Any:
    """The shape of a JSON value: nested key sets, lists reduced to their first element."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keys(value[0])] if value and isinstance(value[0], dict) else []
    return None


def documented_example() -> Any:
    text = DOCS.read_text()
    block = text.split("```json\n", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_json_shape_is_the_documented_one(story: Path) -> None:
    data = json.loads(run(str(story), "--quota", "1MB", "--json").output)
    doc = documented_example()
    assert data["schema"] == doc["schema"] == "popkeep.plan/1"
    laptop = data["devices"][2]  # the documented device entry: the one with a story
    assert keys({**data, "devices": [laptop]}) == keys(doc)
    assert all(d.keys() == laptop.keys() for d in data["devices"])
    # The documented numbers are the real ones for this scenario.
    assert laptop == doc["devices"][0]
    assert data["scenario"] == doc["scenario"]
    assert {k: v for k, v in data["recommendation"].items() if k != "advice"} == {
        k: v for k, v in doc["recommendation"].items() if k != "advice"
    }


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_renders(busy: Path, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"plan{suffix}"
    result = run(str(busy), "--plot", str(target))
    assert result.exit_code == 0, result.output
    data = target.read_bytes()
    assert len(data) > 10_000
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert re.search(rb"<svg[^>]*xmlns=\"http://www.w3.org/2000/svg\"", data)
        assert data.rstrip().endswith(b"</svg>")


def test_plot_refuses_other_formats(busy: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", str(busy), "--plot", str(tmp_path / "p.gif")])
    assert result.exit_code == 78
    assert ".png or .svg" in result.output


def test_config_errors_exit_78_and_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(STORY.replace('checks = "day 7 20:00"', 'checks = "now and then"'))
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 78
    assert "device[2].checks" in result.output
    missing = CliRunner().invoke(cli, ["plan", "--per-day", "3"])
    assert missing.exit_code == 78 and "at least one [[device]]" in missing.output


def make_state(path: Path, rows: list[tuple[str, str, int, str, str | None]]) -> None:
    """A state database with the state store's schema (its own migrations)."""
    from popkeep.state.migrations import MIGRATIONS

    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO messages (account, uid, size, state, first_retrieved_at) VALUES (?,?,?,?,?)",
        rows,
    )
    conn.commit()
    conn.close()


def test_from_state_measures_rate_sizes_and_usage(story: Path, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    rows = [("isp", f"u{k}", 10_000 * (1 + k % 3), "delivered" if k >= 15 else "deleted",
             f"2027-01-{1 + k // 2:02d}T10:00:00.000000+00:00") for k in range(20)]  # fmt: skip
    rows.append(("isp", "unfetched", 999, "seen", None))
    rows.append(("other", "x", 5_000_000, "delivered", "2027-01-01T00:00:00+00:00"))
    make_state(db, rows)
    history = read_history(db, "isp")
    assert len(history) == 20
    measured = measure(history)
    assert measured.mail.per_day == pytest.approx(20 / 9)  # 2027-01-01 .. 2027-01-10
    assert measured.mail.mean_size == 19_500
    assert measured.server_usage == sum(r[2] for r in rows[15:20])
    result = run(str(story), "--from-state", "--state", str(db), "--account", "isp", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["scenario"]["initial_usage"] == measured.server_usage
    assert data["scenario"]["messages"] > 20  # random arrivals at the measured rate, 30 days


def test_from_state_without_a_database_is_a_clear_error(story: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", str(story), "--from-state", "--state",
                                      str(tmp_path / "none.db")])  # fmt: skip
    assert result.exit_code == 70
    assert "no state database" in result.output
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(StateError, match="cannot read the messages table"):
        read_history(empty, None)


def test_measure_needs_history() -> None:
    from datetime import UTC, datetime

    from popkeep.errors import ConfigError

    with pytest.raises(ConfigError):
        measure([])
    one = measure([HistoryRecord(datetime(2027, 1, 1, tzinfo=UTC), 4000, True)])
    assert one.mail.per_day == 1.0 and one.mail.size_sigma == 0.0 and one.server_usage == 4000


def _usage(result: Any) -> int:
    assert result.exit_code == 0, result.output
    return int(json.loads(result.output)["scenario"]["initial_usage"])


def test_from_state_reads_the_configured_state_path(story: Path, tmp_path: Path) -> None:
    """``-c CONFIG`` (or $POPKEEP_CONFIG) decides the database, as for every command;
    without any config, the default database is read."""
    from ..integration.helpers import write_config

    (tmp_path / "conf").mkdir()
    config = write_config(tmp_path / "conf", port=1, user="u", password="p")
    make_state(tmp_path / "conf" / "state.db",
               [("isp", "u1", 4000, "delivered", "2027-01-01T10:00:00+00:00")])  # fmt: skip
    xdg = tmp_path / "xdg"
    (xdg / "data" / "popkeep").mkdir(parents=True)
    make_state(xdg / "data" / "popkeep" / "state.db",
               [("isp", "u1", 777, "delivered", "2027-01-01T10:00:00+00:00")])  # fmt: skip
    env: dict[str, str | None] = {
        "XDG_DATA_HOME": str(xdg / "data"), "XDG_CONFIG_HOME": str(xdg / "config"),
        "POPKEEP_CONFIG": None,
    }  # fmt: skip
    plan = ["plan", str(story), "--from-state", "--json"]
    runner = CliRunner()
    assert _usage(runner.invoke(cli, ["-c", str(config), *plan], env=env)) == 4000
    named = {**env, "POPKEEP_CONFIG": str(config)}
    assert _usage(runner.invoke(cli, plan, env=named)) == 4000
    assert _usage(runner.invoke(cli, plan, env=env)) == 777  # no config: the default database
    missing = runner.invoke(cli, ["-c", str(tmp_path / "nope.toml"), *plan], env=env)
    assert missing.exit_code == 78

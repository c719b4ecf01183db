"""bench/run service --quick: the service benchmark end to end, small, so it never rots.

Five accounts of a private Dovecot over POP3S, ``popkeep serve`` made to poll every
two seconds (check-now) through a six-second no-op window and a six-second window
with a message arriving every half second, ``fetchmail -d 2`` beside it; the
results file must hold every figure and a verdict for every goal, and every
trickled message must have reached popkeep's Maildir.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

BENCH_RUN = Path(__file__).resolve().parents[2] / "bench" / "run"

pytestmark = pytest.mark.dovecot


def test_the_service_bench_runs_small_and_reports_every_goal() -> None:
    # Dovecot's mail processes (as root: the mail user) must reach the work tree
    # (tests/fixtures/dovecot.py): not under pytest's tmp_path, and searchable.
    with tempfile.TemporaryDirectory(prefix="popkeep-svcbench-") as tmp:
        os.chmod(tmp, 0o711)
        work, results = Path(tmp) / "work", Path(tmp) / "RESULTS-service.md"
        done = subprocess.run(
            [str(BENCH_RUN), "service", "--quick", "--work", str(work), "--results", str(results)],
            capture_output=True, text=True, timeout=120, env=dict(os.environ),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        text = results.read_text()
        saved = json.loads((work / "service.json").read_text())

    popkeep = next(f for f in saved["figures"] if f["tool"] == "popkeep")
    assert popkeep["available"] is None
    assert popkeep["polls"] >= 5 and popkeep["trickle_polls"] >= 5  # each polled in each
    assert popkeep["cpu_s"] > 0 and popkeep["rss_kb"] > 0
    assert popkeep["delay"]["count"] >= 3 and popkeep["delay"]["missing"] == 0
    assert all(rss > 0 for rss in saved["baseline_rss_kb"].values()), saved
    for goal in ("CPU per no-op poll", "memory per account", "the whole service",
                 "delivery delay"):  # fmt: skip
        assert re.search(rf"^- {goal}.*\*\*(met|not met)\*\*$", text, re.M), (goal, text)
    assert re.search(r"^\| popkeep \| \d+ \|", text, re.M), text
    fetchmail = next(f for f in saved["figures"] if f["tool"] == "fetchmail")
    if fetchmail["available"] is None:  # installed (scripts/install-test-deps): it ran too
        assert fetchmail["polls"] >= 5 and fetchmail["delay"]["missing"] == 0, fetchmail

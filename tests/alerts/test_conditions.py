"""The alert rules as a table: facts of one pass → conditions active, clear or unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from popkeep.alerts import quiet
from popkeep.alerts.conditions import Active, Facts, Verdict, evaluate
from popkeep.model import RetentionPolicy, RunSummary

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AFTER = timedelta(hours=12)
QUOTA = RetentionPolicy(server_quota=1_000_000, high_water=0.9, low_water=0.7)
NEVER = RetentionPolicy()


def _pass(outcome: str = "ok", **counts: int) -> RunSummary:
    return RunSummary("isp", NOW, NOW, outcome, None if outcome == "ok" else "timed out", **counts)


CASES: list[tuple[str, Facts, RetentionPolicy, Verdict]] = [
    ("ok pass clears what it can tell", Facts(_pass()), NEVER,
     {"signin": None, "failing": None, "quota": None, "skipped": None}),
    ("a refused sign-in is told at once, failing is left to it",
     Facts(_pass("AuthError"), failing_since=NOW - AFTER, signin_refused=True), NEVER,
     {"signin": Active(NOW - AFTER, "timed out"), "quota": None}),
    ("failing, not long yet: nothing said about failing",
     Facts(_pass("TransportError"), failing_since=NOW - timedelta(hours=11)), NEVER,
     {"quota": None}),
    ("failing 12 h", Facts(_pass("TransportError"), failing_since=NOW - AFTER), NEVER,
     {"failing": Active(NOW - AFTER, "timed out"), "quota": None}),
    ("failed pass says nothing about quota or skipped",
     Facts(_pass("TransportError"), failing_since=NOW), QUOTA, {}),
    ("above the high mark, nothing deleted", Facts(_pass(server_octets=950_000)), QUOTA,
     {"signin": None, "failing": None, "quota": Active(NOW, "0.9 MB / 1.0 MB (> 90%)"),
      "skipped": None}),
    ("above the high mark, some deleted: the next pass tells",
     Facts(_pass(server_octets=950_000, deleted=3)), QUOTA,
     {"signin": None, "failing": None, "skipped": None}),
    ("at the high mark is below it", Facts(_pass(server_octets=900_000)), QUOTA,
     {"signin": None, "failing": None, "quota": None, "skipped": None}),
    ("skipped messages quote the pass's warnings",
     Facts(_pass(skipped=1), ["message 7 (9 octets) is larger than …", "other"]), NEVER,
     {"signin": None, "failing": None, "quota": None,
      "skipped": Active(NOW, "message 7 (9 octets) is larger than …")}),
    ("a failed pass that skipped still raises skipped",
     Facts(_pass("DeliveryError", skipped=2), failing_since=NOW), NEVER,
     {"quota": None, "skipped": Active(NOW, "2")}),
]  # fmt: skip


@pytest.mark.parametrize(("facts", "policy", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_rules(facts: Facts, policy: RetentionPolicy, expected: Verdict) -> None:
    assert evaluate(facts, policy, AFTER, NOW) == expected


@pytest.mark.parametrize(("facts", "policy"), [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_a_quiet_pass_raises_nothing(facts: Facts, policy: RetentionPolicy) -> None:
    """``popkeep fetch`` skips the alerts for quiet passes of accounts with nothing open:
    that is right only if evaluate would raise nothing for them."""
    verdict = evaluate(facts, policy, AFTER, NOW)
    if quiet(facts.summary, policy):
        assert set(verdict.values()) == {None}
    else:
        assert any(verdict.values()) or facts.summary.outcome != "ok" or facts.summary.deleted

"""The notice as bytes: stable per alert (so a rerun finds its copy), unique per notice."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from popkeep.alerts.message import Envelope, alert_uid, compose
from popkeep.state.base import Alert

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALERT = Alert("isp", "failing", T0, T0 - timedelta(hours=12), "connection refused",
              cleared_at=T0 + timedelta(hours=2))  # fmt: skip
EN = Envelope("popkeep <popkeep@localhost>", "taro@localhost", "en")


def test_the_same_alert_composes_the_same_bytes() -> None:
    assert compose(ALERT, False, EN) == compose(ALERT._replace(raised_sent_at=T0), False, EN)
    assert compose(ALERT, True, EN) != compose(ALERT, False, EN)


def test_each_notice_has_its_own_message_id_and_uid() -> None:
    ids = set()
    for alert in (ALERT, ALERT._replace(condition="quota"), ALERT._replace(account="other"),
                  ALERT._replace(raised_at=T0 + timedelta(seconds=1))):  # fmt: skip
        for cleared in (False, True):
            message = email.message_from_bytes(compose(alert, cleared, EN),
                                               policy=email.policy.default)  # fmt: skip
            ids.add(message["Message-ID"])
    assert len(ids) == 8
    uid = "popkeep-alert:failing:2026-12-01T09:00:00.000000+00:00:raised"
    assert alert_uid(ALERT, False) == uid


def test_lines_end_in_crlf_like_a_retrieved_message() -> None:
    data = compose(ALERT, False, EN._replace(language="ja"))
    assert data.count(b"\r\n") == data.count(b"\n")


def test_a_clearing_notice_needs_a_cleared_alert() -> None:
    with pytest.raises(ValueError, match="cleared"):
        compose(ALERT._replace(cleared_at=None), True, EN)

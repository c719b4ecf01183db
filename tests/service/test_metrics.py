"""/metrics: what passes did, as Prometheus reads it (parsed with its own parser)."""

from __future__ import annotations

import asyncio
import tomllib
import urllib.error
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from popkeep.collector import AccountResult
from popkeep.config.load import parse_config
from popkeep.config.schema import AccountConfig
from popkeep.errors import AuthError, ConnectError
from popkeep.model import RunSummary
from popkeep.service.metrics import CONTENT_TYPE, Metrics

from .fakes import NOW, FakeView, ServedApi, state
from .test_web import NO_PROXY

CONFIG = """
[[sink]]
name = "home"
type = "maildir"
path = "/tmp/popkeep-metrics-test/Maildir"

[[account]]
name = "isp"
host = "127.0.0.1"
user = "taro"
password_env = "X"
sinks = ["home"]
server_quota = "1MB"

[[account]]
name = "work"
host = "127.0.0.1"
user = "jiro"
password_env = "X"
sinks = ["home"]
"""


@pytest.fixture
def accounts() -> dict[str, AccountConfig]:
    return dict(parse_config(tomllib.loads(CONFIG), "popkeep.toml", env={}).accounts)


def summary(account: str, **counts: int) -> RunSummary:
    return RunSummary(account, NOW - timedelta(seconds=3), NOW, "ok", **counts)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``(sample name, labels) → value`` from the Prometheus text format."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_every_account_has_its_series_before_any_pass(accounts: dict[str, AccountConfig]) -> None:
    got = samples(Metrics(accounts.values()).exposition().decode())
    assert got[("popkeep_polls_total", (("account", "work"),))] == 0
    assert got[("popkeep_messages_delivered_total", (("account", "isp"),))] == 0
    assert got[("popkeep_server_quota_bytes", (("account", "isp"),))] == 1_000_000
    assert ("popkeep_server_quota_bytes", (("account", "work"),)) not in got


def test_passes_are_counted_per_account_and_failures_by_kind(
    accounts: dict[str, AccountConfig],
) -> None:
    metrics = Metrics(accounts.values())
    isp, work = accounts["isp"], accounts["work"]
    ok = AccountResult(summary("isp", delivered=3, delivered_bytes=4500, deleted=2,
                               server_count=10, server_octets=700_000))
    asyncio.run(metrics.pass_finished(isp, ok, state("isp", server_octets=700_000,
                                                     quota_octets=1_000_000)))
    asyncio.run(metrics.pass_finished(isp, ok, state("isp")))
    for error in (ConnectError("refused"), ConnectError("refused"), AuthError("-ERR [AUTH]")):
        failed = AccountResult(summary("work")._replace(outcome=type(error).__name__), error)
        asyncio.run(metrics.pass_finished(work, failed, state("work", error_streak=3)))

    got = samples(metrics.exposition().decode())
    i, w = (("account", "isp"),), (("account", "work"),)
    assert got[("popkeep_polls_total", i)] == 2
    assert got[("popkeep_messages_delivered_total", i)] == 6
    assert got[("popkeep_delivered_bytes_total", i)] == 9000
    assert got[("popkeep_messages_deleted_total", i)] == 4
    assert got[("popkeep_server_messages", i)] == 10
    assert got[("popkeep_server_bytes", i)] == 700_000
    assert got[("popkeep_last_success_timestamp_seconds", i)] == NOW.timestamp()
    assert got[("popkeep_polls_total", w)] == 3
    failures = "popkeep_poll_failures_total"
    assert got[(failures, (("account", "work"), ("kind", "ConnectError")))] == 2
    assert got[(failures, (("account", "work"), ("kind", "AuthError")))] == 1
    assert got[("popkeep_error_streak", w)] == 3
    assert ("popkeep_last_success_timestamp_seconds", w) not in got
    assert ("popkeep_server_messages", w) not in got


def test_two_services_in_one_process_do_not_share_series(
    accounts: dict[str, AccountConfig],
) -> None:
    one, two = Metrics(accounts.values()), Metrics(accounts.values())
    one.record(accounts["isp"], AccountResult(summary("isp", delivered=1)), state("isp"))
    assert samples(two.exposition().decode())[("popkeep_polls_total", (("account", "isp"),))] == 0


@pytest.fixture
def served(accounts: dict[str, AccountConfig]) -> Iterator[tuple[ServedApi, Metrics]]:
    metrics = Metrics(accounts.values())
    api = ServedApi(FakeView([state("isp"), state("work")]),
                    metrics=(metrics.exposition, CONTENT_TYPE))
    yield api, metrics
    api.close()


def test_metrics_are_served_over_http(served: tuple[ServedApi, Metrics],
                                      accounts: dict[str, AccountConfig]) -> None:
    api, metrics = served
    metrics.record(accounts["isp"], AccountResult(summary("isp", delivered=5)), state("isp"))
    with NO_PROXY.open(api.url + "/metrics", timeout=5) as r:
        kind, text = r.headers["content-type"], r.read().decode()
    assert kind == CONTENT_TYPE and kind.startswith("text/plain")
    assert samples(text)[("popkeep_messages_delivered_total", (("account", "isp"),))] == 5


def test_without_metrics_there_is_no_metrics_page() -> None:
    api = ServedApi(FakeView([state("isp")]))
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            NO_PROXY.open(api.url + "/metrics", timeout=5)
        caught.value.close()
        assert caught.value.code == 404
    finally:
        api.close()

"""The status API over real HTTP on 127.0.0.1 (uvicorn on a free port, urllib as client)."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from popkeep.app import PlannedDeletion
from popkeep.errors import ConfigError
from popkeep.service import control
from popkeep.service.web import LISTED_DELETIONS, build_app, loopback_address, serving

from .fakes import NOW, FakeView, ServedApi, state

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "docs" / "status-api.schema.json").read_text(encoding="utf-8")
)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ask(req: urllib.request.Request | str) -> tuple[int, Any]:
    """Status code and body (parsed when it is JSON)."""
    try:
        with NO_PROXY.open(req, timeout=5) as r:
            code, body, kind = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        code, body, kind = exc.code, exc.read(), exc.headers.get("content-type", "")
    return code, json.loads(body) if kind.startswith("application/json") else body


def get(url: str) -> tuple[int, Any]:
    return ask(url)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    return ask(urllib.request.Request(url, data=body, method="POST", headers=headers))


@pytest.fixture
def view() -> FakeView:
    return FakeView([
        state("isp", quota_octets=1_000_000),
        state("work", phase="backing_off", last_outcome="connection refused or lost",
              last_error="connection refused by pop.work.example:995", error_streak=3,
              failing_since=NOW - timedelta(hours=2), server_count=None, server_octets=None),
        state("old", phase="held", next_poll_at=None, last_outcome="wrong password",
              last_error="-ERR [AUTH] Authentication failed.", error_streak=1,
              failing_since=NOW - timedelta(minutes=5)),
    ])


PLANNED = [
    PlannedDeletion("isp", "uid-1", 1200, NOW, "older than 14d", True),
    PlannedDeletion("isp", "uid-2", 3400, NOW + timedelta(days=2), "older than 14d", False),
]


@pytest.fixture
def api(view: FakeView) -> Iterator[ServedApi]:
    served = ServedApi(view, PLANNED)
    yield served
    served.close()


def test_status_lists_each_account_as_the_schema_says(api: ServedApi) -> None:
    code, doc = get(api.url + "/api/status")
    assert code == 200
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert doc["started_at"] == "2026-12-05T08:00:00+00:00"
    isp, work, old = doc["accounts"]
    assert isp["phase"] == "waiting" and isp["next_poll_at"] == "2026-12-05T09:04:00+00:00"
    assert isp["server"] == {"messages": 12, "octets": 600_000, "quota_octets": 1_000_000,
                             "usage": 0.6}
    assert isp["upcoming_deletions"]["count"] == 2
    assert isp["upcoming_deletions"]["due_now"] == 1
    assert isp["upcoming_deletions"]["octets"] == 4600
    assert isp["upcoming_deletions"]["listed"][1] == {
        "uid": "uid-2", "size": 3400, "due_at": "2026-12-07T09:00:00+00:00", "due_now": False,
        "reason": "older than 14d"}
    assert work["error_streak"] == 3 and work["failing_since"] == "2026-12-05T07:00:00+00:00"
    assert work["last_error"] == "connection refused by pop.work.example:995"
    assert work["upcoming_deletions"]["count"] == 0
    assert old["phase"] == "held" and old["next_poll_at"] is None
    assert old["last_error"] == "-ERR [AUTH] Authentication failed."


def test_a_long_schedule_is_counted_and_only_its_first_deletions_listed(view: FakeView) -> None:
    planned = [PlannedDeletion("isp", f"u{i}", 10, NOW + timedelta(hours=i), "old", False)
               for i in range(LISTED_DELETIONS + 30)]
    served = ServedApi(view, planned)
    try:
        _, doc = get(served.url + "/api/status")
    finally:
        served.close()
    jsonschema.validate(doc, SCHEMA)
    deletions = doc["accounts"][0]["upcoming_deletions"]
    assert deletions["count"] == LISTED_DELETIONS + 30
    assert len(deletions["listed"]) == LISTED_DELETIONS
    assert deletions["next_due_at"] == "2026-12-05T09:00:00+00:00"


AUTH = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}


def test_the_password_guards_the_api_without_the_dashboard(view: FakeView) -> None:
    served = ServedApi(view, PLANNED, password="pa55")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            NO_PROXY.open(served.url + "/api/status", timeout=5)
        assert refused.value.code == 401
        assert refused.value.headers["x-frame-options"] == "DENY"
        refused.value.close()
        asked = urllib.request.Request(served.url + "/api/status",
                                       headers={"Authorization": "Bearer t0ken"})
        with NO_PROXY.open(asked, timeout=5) as answer:
            assert answer.status == 200
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    finally:
        served.close()


def test_check_now_with_the_token_asks_the_service(api: ServedApi, view: FakeView) -> None:
    code, answer = post(api.url + "/api/check-now", b'{"accounts": ["work"]}', AUTH)
    assert (code, answer) == (200, {"polling": ["work"]})
    code, answer = post(api.url + "/api/check-now", b"{}", AUTH)
    assert (code, answer) == (200, {"polling": ["isp", "work", "old"]})
    assert view.asked == [["work"], []]


@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/json"},
    {"Content-Type": "application/json", "Authorization": "Bearer wrong"},
    {"Content-Type": "application/json", "Authorization": "t0ken"},
])
def test_check_now_without_the_token_is_refused(
    api: ServedApi, view: FakeView, headers: dict[str, str]
) -> None:
    code, answer = post(api.url + "/api/check-now", b'{"accounts": []}', headers)
    assert code == 401 and "token" in answer["error"]
    assert view.asked == []


def test_check_now_from_a_form_is_refused(api: ServedApi, view: FakeView) -> None:
    """A browser's cross-site form cannot send application/json without a preflight."""
    headers = {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    code, _ = post(api.url + "/api/check-now", b"accounts=isp", headers)
    assert code == 415 and view.asked == []


@pytest.mark.parametrize("body", [b"not json", b'["isp"]', b'{"accounts": "isp"}',
                                  b'{"accounts": [1]}'])
def test_a_malformed_check_now_is_refused(api: ServedApi, view: FakeView, body: bytes) -> None:
    code, answer = post(api.url + "/api/check-now", body, AUTH)
    assert code == 400 and "accounts" in answer["error"] and view.asked == []


def test_check_now_of_an_unknown_account_names_it(api: ServedApi, view: FakeView) -> None:
    code, answer = post(api.url + "/api/check-now", b'{"accounts": ["nope"]}', AUTH)
    assert code == 404 and "'nope'" in answer["error"] and view.asked == []


def test_status_is_not_posted_to(api: ServedApi) -> None:
    code, _ = post(api.url + "/api/status", b"{}", AUTH)
    assert code == 405


def test_the_api_listens_on_loopback_only(api: ServedApi) -> None:
    assert api.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(("listen", "address"), [
    ("127.0.0.1:8025", ("127.0.0.1", 8025)), ("localhost:0", ("127.0.0.1", 0)),
    ("[::1]:8025", ("::1", 8025)), ("127.0.0.2:1", ("127.0.0.2", 1)),
    ("LOCALHOST.:8025", ("127.0.0.1", 8025)),  # what the config's check lets through
])
def test_loopback_addresses_are_accepted(listen: str, address: tuple[str, int]) -> None:
    assert loopback_address(listen) == address


@pytest.mark.parametrize("listen", ["0.0.0.0:8025", "[::]:8025", "192.168.1.2:8025",
                                    "example.org:8025", "127.0.0.1:99999", "127.0.0.1:x"])
def test_other_addresses_are_refused_in_one_line(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        loopback_address(listen)
    assert refused.value.exit_code == 78
    assert str(refused.value).startswith(f"service.listen: {listen!r} is not a loopback")
    assert "\n" not in str(refused.value)


def test_serving_writes_service_json_while_it_listens(tmp_path: Path, view: FakeView) -> None:
    async def upcoming() -> list[PlannedDeletion]:
        return []

    async def run() -> tuple[control.ServiceHandle | None, int, bool]:
        app = build_app(view, token="tok", upcoming=upcoming)
        async with serving(app, "127.0.0.1:0", tmp_path, "tok") as handle:
            seen = control.read_handle(tmp_path)
            code = await asyncio.to_thread(lambda: get(handle.url + "/api/status")[0])
        return seen, code, (tmp_path / control.FILE_NAME).exists()

    seen, code, left = asyncio.run(run())
    assert seen is not None and seen.token == "tok" and seen.url.startswith("http://127.0.0.1:")
    assert code == 200
    assert not left


def test_an_address_in_use_is_one_line(tmp_path: Path, view: FakeView) -> None:
    async def upcoming() -> list[PlannedDeletion]:
        return []

    async def run(port: int) -> None:
        app = build_app(view, token="tok", upcoming=upcoming)
        async with serving(app, f"127.0.0.1:{port}", tmp_path, "tok"):
            pass

    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(ConfigError) as refused:
        asyncio.run(run(taken.getsockname()[1]))
    assert "service.listen 127.0.0.1:" in str(refused.value)
    assert not (tmp_path / control.FILE_NAME).exists()

"""The dashboard's pages and its one action over real HTTP (urllib, no browser):
headers, CSRF, language, password; the browser tests are in test_browser.py."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest

from ..service.fakes import FakeView
from .served import TOKEN, ServedDashboard, view

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PAGES = ("/", "/deletions", "/history", "/planner", "/planner?example=14d",
         "/fragments/accounts")  # fmt: skip


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: str,
                 cookies: SimpleCookie) -> None:  # fmt: skip
        self.status, self.headers, self.body, self.cookies = status, headers, body, cookies


def ask(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")  # fmt: skip
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            status, head, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        status, head, body = exc.code, exc.headers, exc.read()
    cookies: SimpleCookie = SimpleCookie()
    for value in head.get_all("set-cookie") or []:
        cookies.load(value)
    return Answer(status, {k.lower(): v for k, v in head.items()}, body.decode(), cookies)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def fake() -> FakeView:
    return view()


@pytest.fixture
def board(fake: FakeView) -> Iterator[ServedDashboard]:
    served = ServedDashboard(fake)
    yield served
    served.close()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_html_with_a_strict_policy_and_no_framing(
    board: ServedDashboard, path: str
) -> None:
    answer = ask(board.url + path)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert "<script>" not in answer.body and " style=" not in answer.body
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", answer.body), "an outside load"


def test_the_api_answers_carry_the_headers_too(board: ServedDashboard) -> None:
    answer = ask(board.url + "/api/status")
    assert answer.status == 200
    assert answer.headers["x-frame-options"] == "DENY"


def test_the_accounts_page_shows_each_account_in_plain_words(board: ServedDashboard) -> None:
    body = ask(board.url + "/").body
    assert 'data-account="isp"' in body and 'data-account="work"' in body
    assert "signed in, 3 new messages delivered to home" in body
    assert "failed 3 times in a row since 2026-12-05 07:00" in body
    assert "connection refused by pop.work.example:995" in body
    assert "950.0 KB of 1.0 MB (95%); deletes down to 70% above 90%" in body
    assert "uid-9" in body and "larger than 50 MB" in body


def test_check_now_without_the_csrf_token_is_forbidden(
    board: ServedDashboard, fake: FakeView
) -> None:
    token = ask(board.url + "/").cookies["popkeep_csrf"].value
    cookie = {"Cookie": f"popkeep_csrf={token}"}
    for body, headers in ((b"", cookie), (b"csrf=forged", cookie),
                          (f"csrf={token}".encode(), {})):  # fmt: skip
        answer = ask(board.url + "/accounts/isp/check-now", body, headers)
        assert answer.status == 403, (body, headers)
    assert fake.asked == []
    answer = ask(board.url + "/accounts/isp/check-now", f"csrf={token}".encode(), cookie)
    assert answer.status == 303 and answer.headers["location"] == "/?asked=isp"
    assert fake.asked == [["isp"]]


def test_the_csrf_cookie_is_strict_and_hidden_from_scripts(board: ServedDashboard) -> None:
    morsel = ask(board.url + "/").cookies["popkeep_csrf"]
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict"


def test_check_now_by_script_gets_json(board: ServedDashboard, fake: FakeView) -> None:
    token = ask(board.url + "/").cookies["popkeep_csrf"].value
    answer = ask(board.url + "/accounts/work/check-now", f"csrf={token}".encode(),
                 {"Cookie": f"popkeep_csrf={token}", "Accept": "application/json"})
    assert answer.status == 200 and answer.body == '{"polling":["work"]}'


def test_the_language_follows_accept_language_then_the_switch(board: ServedDashboard) -> None:
    assert "今すぐ確認" in ask(board.url + "/", headers={"Accept-Language": "ja,en;q=0.5"}).body
    assert "Check now" in ask(board.url + "/", headers={"Accept-Language": "en,ja;q=0.5"}).body
    switched = ask(board.url + "/?lang=ja", headers={"Accept-Language": "en"})
    assert "今すぐ確認" in switched.body and switched.cookies["lang"].value == "ja"
    kept = ask(board.url + "/", headers={"Accept-Language": "en", "Cookie": "lang=ja"})
    assert "今すぐ確認" in kept.body


def test_times_are_shown_in_the_readers_zone(board: ServedDashboard) -> None:
    body = ask(board.url + "/?tz=Asia/Tokyo").body
    assert "2026-12-05 16:00" in body and "Asia/Tokyo" in body  # 07:00 UTC
    assert "2026-12-05 07:00" in ask(board.url + "/?tz=Not/A_Zone").body


def test_upcoming_deletions_come_from_the_schedule(board: ServedDashboard) -> None:
    body = ask(board.url + "/deletions").body
    assert "2 messages (4.6 KB), 1 at the next check" in body
    assert "uid-2" in body and "2026-12-07 09:00" in body and "<svg" in body


def test_history_charts_the_delivered_messages_and_lists_runs_and_alerts(
    board: ServedDashboard,
) -> None:
    body = ask(board.url + "/history").body
    assert "12-05: 2" in body and "12-02: 3" in body  # the bars' titles
    assert "connection refused or lost" in body and "failing" in body
    assert "raised 2026-12-05 08:00, still active" in body
    assert "raised 2026-12-03 09:00, cleared 2026-12-04 09:00" in body


def test_the_planner_is_prefilled_with_the_measured_volume(board: ServedDashboard) -> None:
    body = ask(board.url + "/planner").body
    assert 'name="per_day" value="12.5"' in body and 'name="mean_size" value="64KB"' in body


def test_the_planner_reproduces_the_14_day_example(board: ServedDashboard) -> None:
    body = ask(board.url + "/planner?example=14d").body
    assert ("The laptop misses 1 message. The first one: arrived day 1 09:12, the phone "
            "fetched it day 1 09:15, the phone deleted it day 15 09:15") in body
    assert "Recommended: set every device to delete after 19d." in body


def test_a_planner_mistake_is_shown_not_a_crash(board: ServedDashboard) -> None:
    answer = ask(board.url + "/planner?devices=phone&retention=14d")
    assert answer.status == 200 and "expected “name = schedule”" in answer.body


def test_a_planner_asked_for_billions_of_messages_refuses_instead_of_simulating(
    board: ServedDashboard,
) -> None:
    # a GET any page the reader visits can send: it must not hold a core and memory
    answer = ask(board.url + "/planner?devices=a+%3D+daily+09:00&per_day=1e9&horizon=3650d")
    assert answer.status == 200 and "more than 2000000 messages" in answer.body


def test_with_a_password_every_request_needs_it(fake: FakeView) -> None:
    served = ServedDashboard(fake, password="pa55")
    try:
        for path in ("/", "/api/status", "/static/dashboard.css"):
            answer = ask(served.url + path)
            assert answer.status == 401
            assert answer.headers["www-authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"me:nope").decode()
        assert ask(served.url + "/", headers={"Authorization": f"Basic {wrong}"}).status == 401
        right = base64.b64encode(b"me:pa55").decode()
        assert ask(served.url + "/", headers={"Authorization": f"Basic {right}"}).status == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert ask(served.url + "/api/status", headers=bearer).status == 200
    finally:
        served.close()


def test_only_the_shipped_static_files_are_served(board: ServedDashboard) -> None:
    assert ask(board.url + "/static/dashboard.js").headers["content-type"].startswith(
        "text/javascript")
    assert ask(board.url + "/static/..%2Fdashboard.py").status == 404
    assert ask(board.url + "/static/nothing.css").status == 404

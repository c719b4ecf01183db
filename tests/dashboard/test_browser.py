"""The dashboard in a real browser (headless Chromium through Playwright) against
``popkeep serve`` and the test Dovecot: every account, "Check now" without a
reload, a wrong password's error, the planner's 14-day example, the Japanese
page, nothing loaded from elsewhere, and a screenshot of each page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from popkeep.testing.mailgen import demo_mailbox

from ..fixtures.dovecot import Dovecot
from .conftest import Service

pytestmark = pytest.mark.dovecot

TIMEOUT_MS = 20_000


@pytest.fixture
def page(browser: Any, service: Service) -> Iterator[Any]:
    """A fresh page (its own cookies) that records every request it makes and
    refuses any that would leave the service."""
    context = browser.new_context(locale="en-US", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    own = urlsplit(service.url).netloc
    page.requests = []

    def guard(route: Any) -> None:
        page.requests.append(route.request.url)
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            route.abort()

    page.route("**/*", guard)
    yield page
    context.close()


def _card(page: Any, name: str) -> Any:
    return page.locator(f'section.card[data-account="{name}"]')


def _first_poll_done(page: Any, service: Service) -> None:
    page.goto(service.url + "/")
    page.wait_for_function(
        "() => document.querySelectorAll('section.card[data-phase=\"polling\"]').length === 0"
        " && !document.body.innerText.includes('not checked yet')")
    page.reload()


def test_the_accounts_page_shows_every_account_and_a_wrong_passwords_error(
    page: Any, service: Service, screenshots: Path
) -> None:
    _first_poll_done(page, service)
    assert page.locator("section.card").count() == 2
    isp, work = _card(page, "isp"), _card(page, "work")
    assert "signed in" in isp.locator("dd.last").inner_text()
    assert work.locator("dd.last").inner_text().startswith("wrong password")
    error = work.locator("dd.error code").inner_text()
    assert "[AUTH]" in error or "Authentication failed" in error, error
    assert "not-the-password" not in page.content()
    page.screenshot(path=str(screenshots / "accounts.png"), full_page=True)


def test_check_now_shows_the_new_poll_without_a_reload(
    page: Any, service: Service, dovecot: Dovecot
) -> None:
    _first_poll_done(page, service)
    page.evaluate("window.sameDocument = true")
    dovecot.add_messages(service.good, demo_mailbox(seed=5)[:2])
    _card(page, "isp").get_by_role("button", name="Check now").click()
    page.wait_for_function(
        "() => document.querySelector('section.card[data-account=\"isp\"] dd.last')"
        ".innerText.includes('2 new messages delivered to home')")
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"


def test_the_planner_reproduces_the_14_day_example(
    page: Any, service: Service, screenshots: Path
) -> None:
    _first_poll_done(page, service)
    page.goto(service.url + "/planner")
    # prefilled with the volume measured from the store: isp's collected messages
    assert page.locator("p.volume").inner_text().startswith("Prefilled with your mail volume")
    assert float(page.locator('input[name="per_day"]').input_value()) > 0
    page.locator("#example").click()
    page.locator("#result").wait_for()
    assert page.locator('tr[data-device="laptop"] td.missed').inner_text() == "1"
    assert page.locator('tr[data-device="desktop"] td.missed').inner_text() == "0"
    story = page.locator("p.story").inner_text()
    assert story.startswith("The laptop misses 1 message.")
    assert "the phone deleted it day 15 09:15 (14d retention)" in story
    page.screenshot(path=str(screenshots / "planner.png"), full_page=True)


def test_the_japanese_page_renders_its_text(page: Any, service: Service, screenshots: Path
                                           ) -> None:  # fmt: skip
    page.goto(service.url + "/")
    page.get_by_role("link", name="日本語").click()
    page.get_by_role("heading", name="アカウント").wait_for()
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.get_by_role("button", name="今すぐ確認").count() == 2
    assert "パスワードが違います" in _card(page, "work").inner_text()
    page.screenshot(path=str(screenshots / "accounts-ja.png"), full_page=True)
    page.goto(service.url + "/history")  # the choice is remembered
    assert page.get_by_role("heading", name="履歴").is_visible()


@pytest.mark.parametrize("path", ["deletions", "history"])
def test_the_other_pages_render(page: Any, service: Service, screenshots: Path,
                                path: str) -> None:  # fmt: skip
    _first_poll_done(page, service)
    page.goto(f"{service.url}/{path}")
    assert page.locator("main h1").is_visible()
    if path == "deletions":  # isp keeps mail for 10 days: its collected messages
        rows = page.locator('section.card[data-account="isp"] tbody tr')
        assert rows.count() >= 1
        assert "delete_after elapses (age)" in rows.first.inner_text()
    if path == "history":
        assert page.locator("table.runs tr.failed").count() >= 1
        assert page.locator("figure.chart svg rect.bar").count() >= 1
    page.screenshot(path=str(screenshots / f"{path}.png"), full_page=True)


def test_no_page_loads_anything_from_outside_the_service(page: Any, service: Service) -> None:
    own = urlsplit(service.url).netloc
    for path in ("/", "/deletions", "/history", "/planner?example=14d", "/?lang=ja"):
        page.goto(service.url + path)
        page.wait_for_load_state("networkidle")
    hosts = {urlsplit(u).netloc for u in page.requests}
    assert hosts == {own}, page.requests
    assert any(u.endswith("/static/dashboard.css") for u in page.requests)

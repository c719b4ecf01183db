"""The web dashboard of ``popkeep serve``: Accounts, Upcoming deletions, History, Planner.

Owns: the dashboard's routes (added to the status API's application by
:func:`popkeep.service.web.build_app`), rendering the Jinja2 templates and
serving the static CSS and script shipped beside this module; the language and
time zone of a request (``?lang=``/``?tz=``, remembered in cookies); the CSRF
check of every POST (a double-submit token: the ``popkeep_csrf`` cookie, set
``SameSite=Strict``, must equal the form's ``csrf`` field, else 403). The
security headers and the password guard every answer of the service, the
dashboard's too, are :class:`popkeep.service.web.Guard`'s. The only module that
imports jinja2.

Must not: read the store or the configuration itself (what it shows comes from
the view and the callables it is built with), compute retention or a plan
(``App.schedule`` and ``popkeep.planner`` do), or load anything from outside the
service (no CDN, no inline script or style).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, tzinfo
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from popkeep.errors import ConfigError
from popkeep.service import pages, planform
from popkeep.service.words import choose, octets

if TYPE_CHECKING:
    from popkeep.service.model import ServiceView
    from popkeep.service.web import Upcoming

log = logging.getLogger(__name__)

CSRF_COOKIE = "popkeep_csrf"
STATIC = {"dashboard.css": "text/css; charset=utf-8",
          "dashboard.js": "text/javascript; charset=utf-8"}  # fmt: skip
#: the largest form body read (the planner's is the biggest, well under this)
MAX_FORM = 64 * 1024
YEAR = 365 * 86400

#: the store's records; ``True``: with the history (History and Planner pages)
Records = Callable[[bool], Awaitable[pages.Records]]
Facts = Callable[[], Mapping[str, pages.Facts]]


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("popkeep.service", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["svg"] = Markup  # our own markup, escaped where it was drawn (charts.py)
    return env


class Dashboard:
    """The dashboard's pages over ``view``; ``records``, ``facts`` and ``upcoming``
    read what the view does not hold (the store, read-only; the configuration)."""

    def __init__(
        self, view: ServiceView, upcoming: Upcoming, *, records: Records, facts: Facts,
        now: Callable[[], datetime], zone: tzinfo | None = None,
    ) -> None:  # fmt: skip
        self.view, self.upcoming, self.records, self.facts = view, upcoming, records, facts
        self.now, self.zone = now, zone or pages.local_zone()
        self.env = _templates()
        #: one simulation at a time (each may hold a core and hundreds of MB a few seconds)
        self._planning = asyncio.Lock()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.accounts, methods=["GET"]),
            Route("/fragments/accounts", self.accounts_fragment, methods=["GET"]),
            Route("/accounts/{name}/check-now", self.check_now, methods=["POST"]),
            Route("/deletions", self.deletions, methods=["GET"]),
            Route("/history", self.history, methods=["GET"]),
            Route("/planner", self.planner, methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
        ]

    # -- the reader of a request --------------------------------------------------

    def _reader(self, request: Request) -> pages.Reader:
        lang = choose(request.query_params.get("lang"), request.cookies.get("lang"),
                      request.headers.get("accept-language", ""))  # fmt: skip
        return pages.Reader(lang, self._zone(request), self.now())

    def _zone(self, request: Request) -> tzinfo:
        name = request.query_params.get("tz") or request.cookies.get("tz")
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        return self.zone

    def _page(self, request: Request, template: str, who: pages.Reader, **context: Any
              ) -> HTMLResponse:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        zone = getattr(who.zone, "key", None) or who.now.astimezone(who.zone).tzname() or "UTC"
        html = self.env.get_template(template).render(
            t=who.say, lang=who.lang, csrf=token, path=request.url.path,
            other="ja" if who.lang == "en" else "en", zone=zone,
            updated=who.time(who.now), **context,
        )  # fmt: skip
        response = HTMLResponse(html)
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/")
        for key in ("lang", "tz"):
            if key in request.query_params:
                response.set_cookie(key, request.query_params[key], max_age=YEAR,
                                    samesite="strict", path="/")  # fmt: skip
        return response

    # -- pages --------------------------------------------------------------------

    async def _cards(self, who: pages.Reader) -> list[dict[str, Any]]:
        records = await self.records(False)
        return pages.account_cards(self.view.accounts(), self.facts(), records, who)

    async def accounts(self, request: Request) -> Response:
        who = self._reader(request)
        asked = request.query_params.get("asked", "")
        return self._page(request, "accounts.html", who, cards=await self._cards(who),
                          asked=asked, nav="accounts")  # fmt: skip

    async def accounts_fragment(self, request: Request) -> Response:
        who = self._reader(request)
        return self._page(request, "_cards.html", who, cards=await self._cards(who))

    async def deletions(self, request: Request) -> Response:
        who = self._reader(request)
        planned = await self.upcoming()
        rows = pages.deletions(self.view.accounts(), planned, who)
        return self._page(request, "deletions.html", who, accounts=rows, nav="deletions")

    async def history(self, request: Request) -> Response:
        who = self._reader(request)
        shown = pages.history(self.view.accounts(), await self.records(True), who)
        return self._page(request, "history.html", who, nav="history", **shown)

    async def planner(self, request: Request) -> Response:
        who = self._reader(request)
        records = await self.records(True)
        values, asked = planform.form_values(dict(request.query_params), records.volume)
        shown: dict[str, Any] | None = None
        error = ""
        if asked:
            try:
                async with self._planning:
                    plan = await asyncio.to_thread(planform.simulate, values, who.now.date())
                shown = planform.result(plan, who.lang)
            except ConfigError as exc:
                error = exc.message
        volume = ""
        if records.volume is not None and not request.query_params.get("example"):
            volume = who.say("planner.volume", per_day=f"{records.volume[0]:.1f}",
                             size=octets(records.volume[1]))  # fmt: skip
        return self._page(request, "planner.html", who, nav="planner", values=values,
                          result=shown, error=error, volume=volume)  # fmt: skip

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found\n", status_code=404, media_type="text/plain")
        body = resources.files("popkeep.service").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"cache-control": "no-cache"})

    # -- actions ------------------------------------------------------------------

    async def check_now(self, request: Request) -> Response:
        """``POST /accounts/NAME/check-now`` with the CSRF token: poll NAME at once.
        A script (``Accept: application/json``) gets JSON; a form, a redirect."""
        form = await _form(request)
        if not _csrf_ok(request, form):
            who = self._reader(request)
            return Response(who.say("csrf") + "\n", status_code=403,
                            media_type="text/plain; charset=utf-8")  # fmt: skip
        name = request.path_params["name"]
        try:
            polling = self.view.check_now([name])
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        log.info("dashboard: check now %s", ", ".join(polling))
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"polling": polling})
        return RedirectResponse(f"/?asked={quote(name)}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (the only kind our forms send)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), max_num_fields=32))
    except (UnicodeDecodeError, ValueError):
        return {}


def _csrf_ok(request: Request, form: Mapping[str, str]) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = form.get("csrf", "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())


__all__ = ["CSRF_COOKIE", "Dashboard"]

"""The local status API of ``popkeep serve``: JSON for people's tools, /metrics for Prometheus.

Owns: the Starlette application (:func:`build_app`) over a
:class:`~popkeep.service.model.ServiceView`, the JSON shape of ``GET /api/status``
(:func:`status_document`, documented with its JSON Schema in docs/status-api.md),
the token check of ``POST /api/check-now``, the guard of every answer
(:class:`Guard`: a strict Content-Security-Policy, no framing, and with a
password HTTP Basic, RFC 7617, or the token on every request), and :class:`HttpServer`, uvicorn
serving that application as one task in the service's event loop. The only
module that imports starlette and uvicorn.

Must not: read the store or the config itself (what it shows comes from the view
and the callables it is built with), install signal handlers (the service owns
SIGTERM/SIGINT/SIGHUP), or listen beyond the address it is given.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from popkeep.config.sink_types import is_loopback
from popkeep.errors import ConfigError
from popkeep.service import control
from popkeep.service.model import AccountState, ServiceView

if TYPE_CHECKING:
    from popkeep.service.dashboard import Dashboard

log = logging.getLogger(__name__)

#: ``version`` of the status document; bumped only if a key changes meaning.
STATUS_VERSION = 1
#: Upcoming deletions listed one by one per account (the rest are only counted).
LISTED_DELETIONS = 50
#: every answer of the service: nothing but its own scripts, styles and images,
#: never inside a frame (RFC 7034; CSP Level 3 ``frame-ancestors``)
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class Deletion(Protocol):
    """One planned deletion (``app.PlannedDeletion``, from ``retention.decide``)."""

    @property
    def account(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def due_now(self) -> bool: ...


#: What retention will delete, for every account (``App.schedule``, off the loop).
Upcoming = Callable[[], Awaitable[Sequence[Deletion]]]
#: The Prometheus text and its media type (``Metrics.exposition``, ``metrics.CONTENT_TYPE``).
Exposition = tuple[Callable[[], bytes], str]


def _time(moment: datetime | None) -> str | None:
    """UTC, ISO 8601, to the second."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _server(state: AccountState) -> dict[str, Any]:
    usage = None
    if state.server_octets is not None and state.quota_octets:
        usage = round(state.server_octets / state.quota_octets, 4)
    return {"messages": state.server_count, "octets": state.server_octets,
            "quota_octets": state.quota_octets, "usage": usage}


def _deletions(planned: Sequence[Deletion]) -> dict[str, Any]:
    dated = [p.due_at for p in planned if p.due_at is not None]
    return {
        "count": len(planned),
        "octets": sum(p.size for p in planned),
        "due_now": sum(1 for p in planned if p.due_now),
        "next_due_at": _time(min(dated)) if dated else None,
        "listed": [
            {"uid": p.uid, "size": p.size, "due_at": _time(p.due_at), "due_now": p.due_now,
             "reason": p.reason}
            for p in planned[:LISTED_DELETIONS]
        ],
    }


def account_document(state: AccountState, planned: Sequence[Deletion]) -> dict[str, Any]:
    """One account of ``GET /api/status``."""
    return {
        "account": state.name,
        "phase": state.phase,
        "last_poll_at": _time(state.last_poll_at),
        "next_poll_at": _time(state.next_poll_at),
        "last_outcome": state.last_outcome,
        "last_error": state.last_error,
        "error_streak": state.error_streak,
        "failing_since": _time(state.failing_since),
        "last_success_at": _time(state.last_success_at),
        "server": _server(state),
        "upcoming_deletions": _deletions(planned),
    }


def status_document(
    states: Sequence[AccountState], planned: Sequence[Deletion], started_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The body of ``GET /api/status`` (schema: docs/status-api.schema.json)."""
    by_account: dict[str, list[Deletion]] = {}
    for p in planned:
        by_account.setdefault(p.account, []).append(p)
    return {
        "version": STATUS_VERSION,
        "generated_at": _time(now),
        "started_at": _time(started_at),
        "accounts": [account_document(s, by_account.get(s.name, [])) for s in states],
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _bearer(authorization: str, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (never an empty token)."""
    scheme, _, value = authorization.partition(" ")
    return (scheme.lower() == "bearer" and bool(token)
            and hmac.compare_digest(value.strip().encode(), token.encode()))


class Guard:
    """ASGI middleware: the security headers on every answer, and with a
    ``password``, HTTP Basic (any user name) or the API's bearer ``token`` on
    every request (RFC 7617; compared in constant time)."""

    def __init__(self, app: ASGIApp, password: str | None = None, token: str = "") -> None:
        self.app, self.password, self.token = app, password, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.password is not None and not self._allowed(scope):
            await _challenge(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, sending)

    def _allowed(self, scope: Scope) -> bool:
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if _bearer(given, self.token):
            return True
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "basic" or self.password is None:
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(decoded.partition(":")[2].encode(), self.password.encode())


async def _challenge(scope: Scope, receive: Receive, send: Send) -> None:
    response = Response("popkeep: the dashboard needs its password\n", status_code=401,
                        headers={"www-authenticate": 'Basic realm="popkeep", charset="UTF-8"',
                                 **SECURITY_HEADERS})  # fmt: skip
    await response(scope, receive, send)


async def _names(request: Request) -> list[str] | None:
    """The ``accounts`` list of a check-now body (``{}`` or no body: all), None if malformed."""
    body = await request.body()
    if not body.strip():
        return []
    try:
        data = json.loads(body)
    except ValueError:
        return None
    names = data.get("accounts", []) if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return names


def build_app(
    view: ServiceView,
    *,
    token: str,
    upcoming: Upcoming,
    metrics: Exposition | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    dashboard: Dashboard | None = None,
    password: str | None = None,
) -> Starlette:
    """The status API over ``view``, and with ``dashboard`` its pages too
    (docs/dashboard.md). ``POST /api/check-now`` needs ``token`` (from
    service.json); with ``password`` every request needs it or the token
    (:class:`Guard`, which puts the security headers on every answer)."""

    async def status(request: Request) -> Response:
        planned = await upcoming()
        return JSONResponse(status_document(view.accounts(), planned, view.started_at(), now()))

    async def check_now(request: Request) -> Response:
        if not _bearer(request.headers.get("authorization", ""), token):
            return _error(401, "missing or wrong token (the CLI reads it from service.json)")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _error(415, "send the body as application/json")
        names = await _names(request)
        if names is None:
            return _error(400, 'the body must be {"accounts": ["name", ...]}')
        try:
            polling = view.check_now(names)
        except ValueError as exc:
            return _error(404, str(exc))
        log.info("check-now: polling %s", ", ".join(polling) or "nothing")
        return JSONResponse({"polling": polling})

    routes: list[BaseRoute] = [
        Route("/api/status", status, methods=["GET"]),
        Route("/api/check-now", check_now, methods=["POST"]),
    ]
    if metrics is not None:
        render, media_type = metrics

        async def exposition(request: Request) -> Response:
            return Response(render(), media_type=media_type)

        routes.append(Route("/metrics", exposition, methods=["GET"]))
    if dashboard is not None:
        routes += dashboard.routes()
    return Starlette(routes=routes, middleware=[Middleware(Guard, password=password, token=token)])


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the service owns SIGTERM/SIGINT/SIGHUP."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """An application served by uvicorn on an address it binds itself, as a task."""

    def __init__(self, app: Starlette) -> None:
        self._config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                      server_header=False)
        self._server = _QuietServer(self._config)
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self, host: str, port: int) -> str:
        """Bind ``host:port`` (0: any free port) and serve; returns the base URL.

        Raises ConfigError when the address cannot be bound (in use, not local)."""
        try:
            sock = socket.create_server((host, port), family=_family(host), reuse_port=False)
        except OSError as exc:
            raise ConfigError(f"service.listen {host}:{port}: {exc.strerror or exc}") from None
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]),
                                         name="popkeep-status-api")
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)  # uvicorn sets `started` once it serves
        if self._task.done():
            self._task.result()
        log.info("status API on %s", self.url)
        return self.url

    async def stop(self) -> None:
        """Close the listener and the open connections; returns once they are."""
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def loopback_address(listen: str, remote_ok: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT``) of ``[service] listen`` → ``(host, port)``.

    ConfigError unless the host is a loopback address (127.0.0.0/8, ::1) or
    ``localhost`` (:func:`~popkeep.config.sink_types.is_loopback`, as the config's
    check), or ``remote_ok`` (the service has a password: every request
    needs it, docs/dashboard.md) and it is any IP address."""
    host, _, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        local = is_loopback(host) or (remote_ok and _is_address(host))
        number = int(port)
    except ValueError:
        local, number = False, -1
    if not local or not 0 <= number <= 65535:
        raise ConfigError(
            f"service.listen: {listen!r} is not a loopback address and port; without a "
            f'[service] password it listens on this machine only (e.g. "127.0.0.1:8025")'
        )
    return (host if _is_address(host) else "127.0.0.1"), number  # localhost


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@asynccontextmanager
async def serving(
    app: Starlette, listen: str, state_dir: Path, token: str, remote_ok: bool = False
) -> AsyncIterator[control.ServiceHandle]:
    """Serve ``app`` on ``listen`` (loopback only, unless ``remote_ok``: the app asks
    for a password) while inside, and let the CLI find it: ``service.json`` in
    ``state_dir`` names this process, the URL and ``token`` while the API listens,
    and is removed on the way out."""
    host, port = loopback_address(listen, remote_ok)
    server = HttpServer(app)
    url = await server.start(host, port)
    try:
        handle = control.write_handle(state_dir, url, token)
        try:
            yield handle
        finally:
            control.remove_handle(state_dir, handle)
    finally:
        await server.stop()


__all__ = ["LISTED_DELETIONS", "STATUS_VERSION", "Deletion", "HttpServer", "build_app",
           "loopback_address", "serving", "status_document"]

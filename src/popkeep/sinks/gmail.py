"""The Gmail API sink: ``users.messages.import`` into a Gmail mailbox.

Owns: the REST calls (made directly with ``urllib``: the request shape is what
Google documents, and a discovery-based client adds nothing here), label
names → label ids (created if missing), exponential backoff on 429 / 5xx /
rate-limit 403, and where its OAuth access tokens come from: either
``oauth_token_command``, or an authorized-user token file (``token_file``)
kept by the Google token provider (:mod:`popkeep.oauth.google`: refreshed with
google-auth and saved with mode 0600; :func:`authorize` runs its installed-app
flow with the client of ``client_secret_file``). It imports no Google library.

The import request (https://developers.google.com/gmail/api/reference/rest/v1/users.messages/import)::

    POST {api}/upload/gmail/v1/users/me/messages/import
         ?uploadType=multipart&internalDateSource=dateHeader
         &neverMarkSpam=false&processForCalendar=false
    Authorization: Bearer <token>
    Content-Type: multipart/related; boundary=…
      part 1: application/json  {"labelIds": [...]}
      part 2: message/rfc822    the message bytes, unchanged

Durable means the API answered 200 with the new message ``id`` (the receipt).
Exactly-once: :meth:`find` searches ``rfc822msgid:<Message-ID>`` and confirms a
hit by fetching it ``format=raw`` and comparing the sha256 with the key. It
needs the message (for its Message-ID); a message without one cannot be found
and is at-least-once. An import left without a clear answer (a timeout or a
reset after sending, HTTP 500/502/504) is looked for the same way before it is
sent again, never resent blindly. This is the one sink not tested against the real
service (tests use a local server that checks the documented request shape).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib import error as urlerror
from urllib import parse, request

from popkeep.clock import Clock, SystemClock
from popkeep.config.schema import OAuthConfig
from popkeep.config.sink_types import GmailSinkConfig
from popkeep.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    DeliveryRefused,
    MessageRefused,
)
from popkeep.model import Receipt
from popkeep.sinks.base import Delivery
from popkeep.sinks.trace import message_id, network_chunks, trace_lines
from popkeep.spool import SpooledMessage

if TYPE_CHECKING:
    from popkeep.oauth import TokenProvider

logger = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/gmail.insert",
          "https://www.googleapis.com/auth/gmail.labels",
          "https://www.googleapis.com/auth/gmail.readonly")
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_RATE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")
MAX_DELAY = 64.0

#: Looks for what an unanswered request may have created: its id, or None.
_Look = Callable[[], Awaitable[str | None]]


class _Response:
    """Status, headers and body of one HTTP exchange (errors included)."""

    def __init__(self, status: int, body: bytes, retry_after: str | None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise DeliveryError(f"Gmail API answered non-JSON (HTTP {self.status})") from exc
        return value if isinstance(value, dict) else {}


def multipart_body(metadata: dict[str, Any], raw: bytes, boundary: str) -> bytes:
    """The ``multipart/related`` upload body (RFC 2387): JSON metadata, then the message."""
    b = boundary.encode("ascii")
    return b"".join((
        b"--", b, b"\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n",
        json.dumps(metadata).encode("utf-8"), b"\r\n",
        b"--", b, b"\r\nContent-Type: message/rfc822\r\n\r\n", raw, b"\r\n",
        b"--", b, b"--\r\n",
    ))


def _check_endpoint(endpoint: str) -> None:
    """https only; plain http only to a loopback address (the test server)."""
    url = parse.urlsplit(endpoint)
    if url.scheme == "https":
        return
    try:
        loopback = url.scheme == "http" and ipaddress.ip_address(url.hostname or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"api_endpoint {endpoint!r}: must be https (http only to 127.0.0.1)")


class GmailSink:
    """``type = "gmail"``. See the module docstring."""

    exactly_once = True

    def __init__(self, config: GmailSinkConfig, clock: Clock | None = None) -> None:
        _check_endpoint(config.api_endpoint)
        self.config = config
        self.name = config.name
        self._clock = clock or SystemClock()
        self._token: str | None = None
        self._label_ids: list[str] | None = None
        self._user = parse.quote(config.user_id, safe="")

    # -- auth ---------------------------------------------------------------

    async def _access_token(self, renew: bool = False) -> str:
        """The token to send; with ``renew`` (the API answered 401) a new one: the
        command runs again, or the token file's refresh token is used."""
        if self._token is None or renew:
            if self.config.oauth_token is not None:
                self._token = await asyncio.to_thread(self.config.oauth_token.resolve)
            else:
                tokens = google_tokens(self.config)
                self._token = await asyncio.to_thread(tokens.access_token, renew)
        return self._token

    # -- HTTP ---------------------------------------------------------------

    def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> _Response:
        req = request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with request.urlopen(req, timeout=self.config.timeout) as answer:  # noqa: S310
                return _Response(answer.status, answer.read(), answer.headers.get("Retry-After"))
        except urlerror.HTTPError as exc:
            with exc:
                return _Response(exc.code, exc.read(), exc.headers.get("Retry-After"))
        except (urlerror.URLError, OSError) as exc:
            return _Response(-1, str(getattr(exc, "reason", exc)).encode(), None)

    async def _call(self, method: str, path: str, body: bytes | None = None,
                    content_type: str | None = None, look: _Look | None = None) -> dict[str, Any]:
        """One API call with backoff (429, 5xx, rate-limit 403, network) and one token renewal.

        ``look``: for a call that creates something (an import). When the answer
        leaves it open whether the server acted (no answer: a timeout or a reset
        after sending; 500, 502, 504), ``look()`` is asked before sending again,
        and what it finds is the result: ``{"id": found}``.
        """
        renewed = False
        for attempt in range(self.config.max_retries + 1):
            headers = {"Authorization": f"Bearer {await self._access_token()}"}
            if content_type:
                headers["Content-Type"] = content_type
            url = self.config.api_endpoint + path
            answer = await asyncio.to_thread(self._send, method, url, body, headers)
            if 200 <= answer.status < 300:
                return answer.json()
            if answer.status == 401 and not renewed:
                renewed = True
                await self._access_token(renew=True)
                continue
            if look is not None and _unsure(answer):
                logger.info("sink %s: HTTP %s: looking before sending again",
                            self.name, answer.status)
                found = await look()
                if found is not None:
                    return {"id": found}
            if not _retryable(answer) or attempt == self.config.max_retries:
                raise _error(answer, f"sink {self.name}: {method} {path.split('?')[0]}")
            delay = self._delay(attempt, answer.retry_after)
            logger.info("sink %s: HTTP %s, retrying in %.2f s", self.name, answer.status, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay: float = min(self.config.backoff * float(2**attempt), MAX_DELAY)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), MAX_DELAY))
        return delay

    # -- labels -------------------------------------------------------------

    async def open(self) -> None:
        """Get a token and resolve (creating if missing) the configured label names."""
        if self._label_ids is not None:
            return
        listed = await self._call("GET", f"/gmail/v1/users/{self._user}/labels")
        by_name = {lab.get("name"): lab.get("id") for lab in listed.get("labels", [])}
        ids = []
        for name in self.config.labels:
            if by_name.get(name) is None:
                by_name[name] = await self._create_label(name)
            ids.append(str(by_name[name]))
        self._label_ids = ids

    async def _create_label(self, name: str) -> str:
        body = json.dumps({"name": name, "labelListVisibility": "labelShow",
                           "messageListVisibility": "show"}).encode()
        made = await self._call("POST", f"/gmail/v1/users/{self._user}/labels", body,
                                "application/json; charset=UTF-8")
        logger.info("sink %s: created label %r", self.name, name)
        return str(made["id"])

    # -- deliver ------------------------------------------------------------

    async def deliver(self, batch: Sequence[Delivery]) -> list[Receipt]:
        """Import each message in order; each counts once the API returns its id.

        On failure the DeliveryError carries the receipts of the messages imported
        before it (``delivered``); a message the API refuses (400, 413) is
        :class:`MessageRefused`.
        """
        await self.open()
        receipts: list[Receipt] = []
        try:
            for delivery in batch:
                receipts.append(Receipt(self.name, await self._import(delivery)))
        except DeliveryError as exc:
            exc.delivered = tuple(receipts)
            raise
        return receipts

    def _import_path(self) -> str:
        query = parse.urlencode({
            "uploadType": "multipart",
            "internalDateSource": self.config.internal_date_source,
            "neverMarkSpam": str(self.config.never_mark_spam).lower(),
            "processForCalendar": str(self.config.process_for_calendar).lower(),
        })
        return f"/upload/gmail/v1/users/{self._user}/messages/import?{query}"

    async def _import(self, delivery: Delivery) -> str:
        prefix = b""
        if self.config.trace_headers:
            prefix = trace_lines(delivery, self.name, self._clock.now())
        raw = b"".join(network_chunks(delivery, prefix))
        boundary = f"popkeep-{uuid.uuid4().hex}"
        body = multipart_body({"labelIds": self._label_ids or []}, raw, boundary)

        async def look() -> str | None:
            found = await self.find(delivery.key, delivery.message)
            return None if found is None else found.ref

        try:
            made = await self._call("POST", self._import_path(), body,
                                    f'multipart/related; boundary="{boundary}"', look)
        except DeliveryRefused as exc:  # 400 / 413: this message, not the mailbox
            raise MessageRefused(str(exc)) from exc
        if not isinstance(made.get("id"), str):
            raise DeliveryError(f"sink {self.name}: import answered without an id")
        return str(made["id"])

    # -- find ---------------------------------------------------------------

    async def find(
        self, delivery_key: str, message: SpooledMessage | None = None
    ) -> Receipt | None:
        """The id of an earlier import of these bytes (``rfc822msgid:`` + sha256 check)."""
        wanted = message_id(message) if message is not None else None
        if wanted is None:
            logger.warning("sink %s: no Message-ID to search for; assuming absent", self.name)
            return None
        query = parse.urlencode({"q": f"rfc822msgid:{wanted.strip('<>')}",
                                 "includeSpamTrash": "true"})
        listed = await self._call("GET", f"/gmail/v1/users/{self._user}/messages?{query}")
        for hit in listed.get("messages", [])[:20]:
            if await self._same_content(str(hit.get("id")), delivery_key):
                return Receipt(self.name, str(hit["id"]))
        return None

    async def _same_content(self, gmail_id: str, key: str) -> bool:
        path = f"/gmail/v1/users/{self._user}/messages/{parse.quote(gmail_id, safe='')}"
        got = await self._call("GET", path + "?format=raw")
        raw = base64.urlsafe_b64decode(str(got.get("raw", "")) + "==")
        if self.config.trace_headers:
            raw = _strip_trace(raw)
        return hashlib.sha256(raw).hexdigest()[:40] == key[16:]

    async def close(self) -> None:
        """Nothing is held between calls."""


def _unsure(answer: _Response) -> bool:
    """Whether the server may have acted on a request that did not succeed: no answer
    (timeout, reset after sending), or a gateway / server error (500, 502, 504)."""
    return answer.status < 0 or answer.status in (500, 502, 504)


def _retryable(answer: _Response) -> bool:
    if answer.status in _RETRY_STATUS or answer.status < 0:
        return True
    return answer.status == 403 and any(r.encode() in answer.body for r in _RATE_REASONS)


def _error(answer: _Response, what: str) -> DeliveryError | AuthError:
    detail = answer.body[:300].decode("utf-8", "replace").strip()
    if answer.status in (401, 403) and not _retryable(answer):
        return AuthError(f"{what}: HTTP {answer.status}: {detail}")
    if answer.status == 400 or answer.status == 413:
        return DeliveryRefused(f"{what}: HTTP {answer.status}: {detail}")
    return DeliveryError(f"{what}: HTTP {answer.status}: {detail}")


def _strip_trace(raw: bytes) -> bytes:
    lines = raw.split(b"\r\n", 2)
    if len(lines) == 3 and lines[0].startswith(b"X-Popkeep-Account: ") and lines[1].startswith(
        b"Received: by popkeep"
    ):
        return lines[2]
    return raw


# -- OAuth token file (kept by popkeep.oauth's Google provider) -----------------


def google_tokens(config: GmailSinkConfig, client_id: str = "", client_secret: str | None = None,
                  authority: str | None = None) -> TokenProvider:
    """The Google token provider over the sink's ``token_file`` (mode 0600). Refreshing
    needs no client: the authorized-user JSON holds it; signing in takes the one of
    ``client_secret_file`` (:func:`authorize`). ``authority``: another sign-in server
    than Google's (the tests' fake one)."""
    from popkeep.oauth import provider  # google-auth loads only for a token file

    if config.token_file is None:
        raise ConfigError(f'sink "{config.name}": no token_file')
    return provider(OAuthConfig(
        provider="google", client_id=client_id, client_secret=client_secret, scopes=SCOPES,
        token_file=config.token_file, authority=authority, owner=f'sink "{config.name}"'))


def authorize(config: GmailSinkConfig, say: Callable[[str], None]) -> str:
    """``popkeep auth``: Google's installed-app flow (a browser on this machine) with the
    client of ``client_secret_file``; the tokens go into ``token_file``. Where, in words."""
    if config.client_secret_file is None or config.token_file is None:
        raise ConfigError(f'sink "{config.name}": set client_secret_file and token_file '
                          "to use popkeep auth")
    client_id, client_secret = _client(config.client_secret_file)
    google_tokens(config, client_id, client_secret).sign_in("browser", say)
    return str(config.token_file)


def _client(path: Path) -> tuple[str, str]:
    """Client id and secret from the OAuth client JSON Google's console gives
    (``{"installed": {"client_id": …, "client_secret": …}}``, or ``"web"``)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        client = document.get("installed") or document["web"]
        return str(client["client_id"]), str(client["client_secret"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"client_secret_file {path}: not an OAuth client JSON from "
                          f"Google's console: {exc!r}") from exc

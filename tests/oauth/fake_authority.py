"""A fake OAuth 2.0 authorization server on 127.0.0.1 (HTTPS), for the token providers.

Speaks what Microsoft's and Google's sign-in servers document, as far as popkeep
uses it: Microsoft's OpenID discovery document (``/<tenant>/v2.0/.well-known/
openid-configuration``); the device authorization endpoint (RFC 8628 §3.1-3.2);
the token endpoint (RFC 6749 §5, §6) for the ``device_code`` grant, answering
``authorization_pending``, ``slow_down`` and ``expired_token`` as scripted
(RFC 8628 §3.5), and for the ``refresh_token`` grant, answering ``invalid_grant``
once the refresh token is revoked, and the ``authorization_code`` grant after the
authorization endpoint (``…/authorize``, Google's ``/auth``) redirected a browser
back to the client's local redirect URI. Google's token endpoint is ``/token``.

Every request is recorded, so tests check what the client sent.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from ..fixtures.http import serving

TENANT = "consumers"
USER = "taro@outlook.example"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@dataclass
class Authority:
    """The server's state: what it will answer, what it was asked."""

    base: str = ""
    #: answers to the device_code grant, in order, before the tokens: error words
    device_script: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)  #: refresh tokens no longer valid
    issued: int = 0
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    expires_in: int = 3600  #: lifetime of each access token
    device_scope: str = ""  #: the scope the device authorization request asked for
    asked_scope: str = ""  #: the scope the browser's authorization request asked for
    nonce: str | None = None  #: the authorization request's, for the next ID token
    #: while set, POSTs get no answer (until it is cleared or 10 s pass): a hung server
    stall: threading.Event = field(default_factory=threading.Event)

    def tokens(self, scope: str) -> dict[str, Any]:
        self.issued += 1
        now = int(time.time())
        claims = {"iss": f"{self.base}/{TENANT}/v2.0", "aud": "client-1", "iat": now,
                  "exp": now + 3600, "sub": "sub-1", "oid": "oid-1", "tid": "tid-1",
                  "preferred_username": USER, "name": "Taro"}
        if self.nonce is not None:  # OpenID Connect Core §3.1.3.6: echoed in the ID token
            claims["nonce"], self.nonce = self.nonce, None
        return {
            "token_type": "Bearer", "scope": scope, "expires_in": self.expires_in,
            "access_token": f"at-{self.issued}", "refresh_token": f"rt-{self.issued}",
            "id_token": f"{_b64({'alg': 'none'})}.{_b64(claims)}.",
            "client_info": _b64({"uid": "oid-1", "utid": "tid-1"}),
        }

    def discovery(self) -> dict[str, Any]:
        root = f"{self.base}/{TENANT}"
        return {
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        }

    def token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", [""])[0]
        scope = form.get("scope", [""])[0]
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != ["dc-1"]:
                return 400, {"error": "invalid_grant"}
            if self.device_script:
                return 400, {"error": self.device_script.pop(0)}
            return 200, self.tokens(self.device_scope)  # the scope granted (RFC 6749 §5.1)
        if grant == "authorization_code":  # RFC 6749 §4.1.3, after the browser's redirect
            if form.get("code") != ["ac-1"]:
                return 400, {"error": "invalid_grant"}
            return 200, self.tokens(scope or self.asked_scope)  # Google's omits it
        if grant == "refresh_token":
            refresh = form.get("refresh_token", [""])[0]
            if refresh in self.revoked or not refresh.startswith("rt-"):
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            return 200, self.tokens(scope)
        return 400, {"error": "unsupported_grant_type"}


def _handler(state: Authority) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            state.requests.append(("GET", path, {}))
            if path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
                self._answer(200, state.discovery())
            elif path in (f"/{TENANT}/oauth2/v2.0/authorize", "/auth"):
                # RFC 6749 §4.1.2: the user consented; back to the client's redirect URI.
                query = parse_qs(urlsplit(self.path).query)
                state.requests.append(("GET", path, query))
                redirect, given = query["redirect_uri"][0], query.get("state", [""])[0]
                state.nonce = query.get("nonce", [None])[0]
                state.asked_scope = query.get("scope", [""])[0]
                if query.get("response_mode") == ["form_post"]:  # OpenID form_post: a form
                    page = (f'<form method="post" action="{escape(redirect)}">'
                            f'<input type="hidden" name="code" value="ac-1">'
                            f'<input type="hidden" name="state" value="{escape(given)}">'
                            "</form>").encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                self.send_response(302)
                self.send_header("Location", f"{redirect}?code=ac-1&state={quote(given)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            if state.stall.is_set():  # a hung server: no answer while stalled (10 s at most)
                stalled = time.monotonic() + 10
                while state.stall.is_set() and time.monotonic() < stalled:
                    time.sleep(0.01)
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            state.requests.append(("POST", path, form))
            if path.endswith("/devicecode"):
                state.device_scope = form.get("scope", [""])[0]
                self._answer(200, {
                    "device_code": "dc-1", "user_code": "ABCD-1234", "interval": 1,
                    "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900,
                    "message": "To sign in, open https://microsoft.com/devicelogin "
                               "and enter the code ABCD-1234."})
            elif path.endswith("/token"):
                self._answer(*state.token(form))
            else:
                self._answer(404, {"error": "not_found"})

    return Handler


@contextmanager
def serve(context: ssl.SSLContext) -> Iterator[Authority]:
    """The fake authority over TLS on 127.0.0.1 (``context``: the server's)."""
    state = Authority()
    with serving(_handler(state), context) as base:
        state.base = base
        try:
            yield state
        finally:
            state.stall.clear()  # a stalled POST lets go, so the server can stop

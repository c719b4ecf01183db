"""A local stand-in for the Gmail API that checks Google's documented request shape.

The import, list (``rfc822msgid:`` search), get (``format=raw``) and labels
calls the Gmail sink makes; scripted failures (``failures``), an import stored
and answered only after the client gave up (``stall_imports``), and imports
refused as invalid (``refuse``).
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ya29.test-token"


class FakeGmail:
    """State and scripted failures of the fake API; requests are recorded for assertions."""

    def __init__(self) -> None:
        self.labels = [{"id": "INBOX", "name": "INBOX", "type": "system"},
                       {"id": "UNREAD", "name": "UNREAD", "type": "system"},
                       {"id": "Label_1", "name": "Existing", "type": "user"}]
        self.messages: dict[str, bytes] = {}
        self.failures: list[tuple[int, dict[str, Any]]] = []  # served before the real answer
        self.requests: list[dict[str, Any]] = []
        self.errors: list[str] = []  # request-shape violations seen by the server
        self.stall_imports = 0  # imports stored, then answered only after `release`
        self.release = threading.Event()
        self.refuse: bytes | None = None  # an import containing this is answered 400

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.errors.append(what)


def make_handler(api: FakeGmail) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self, method: str) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            api.requests.append({"method": method, "path": url.path,
                                 "query": parse_qs(url.query), "headers": dict(self.headers),
                                 "body": body})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            if api.failures:
                status, answer = api.failures.pop(0)
                return self.reply(status, answer)
            self.route(method, url.path, parse_qs(url.query), body)

        def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> None:
            base = "/gmail/v1/users/me"
            if (method, path) == ("GET", f"{base}/labels"):
                return self.reply(200, {"labels": api.labels})
            if (method, path) == ("POST", f"{base}/labels"):
                made = {"id": f"Label_{len(api.labels)}", **json.loads(body)}
                api.labels.append(made)
                return self.reply(200, made)
            if (method, path) == ("POST", f"/upload{base}/messages/import"):
                return self.import_(query, body)
            if (method, path) == ("GET", f"{base}/messages"):
                wanted = query["q"][0].removeprefix("rfc822msgid:")
                hits = [{"id": i, "threadId": i} for i, raw in api.messages.items()
                        if f"<{wanted}>".encode() in raw]
                return self.reply(200, {"messages": hits, "resultSizeEstimate": len(hits)}
                                  if hits else {"resultSizeEstimate": 0})
            if method == "GET" and path.startswith(f"{base}/messages/"):
                raw = api.messages[path.rsplit("/", 1)[1]]
                api.check(query == {"format": ["raw"]}, "get without format=raw")
                return self.reply(200, {"raw": base64.urlsafe_b64encode(raw).decode()})
            return self.reply(404, {"error": {"code": 404}})

        def import_(self, query: dict[str, list[str]], body: bytes) -> None:
            api.check(query.get("uploadType") == ["multipart"], "uploadType")
            api.check(query.get("internalDateSource") == ["dateHeader"], "internalDateSource")
            api.check(query.get("neverMarkSpam") in (["true"], ["false"]), "neverMarkSpam")
            api.check(query.get("processForCalendar") in (["true"], ["false"]), "calendar")
            ctype = self.headers.get("Content-Type", "")
            api.check(ctype.startswith("multipart/related; boundary="), "content type")
            parsed = email.message_from_bytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body, policy=email.policy.HTTP
            )
            meta, msg = parsed.get_payload()  # type: ignore[misc]
            api.check(meta.get_content_type() == "application/json", "part 1 type")
            api.check(msg.get_content_type() == "message/rfc822", "part 2 type")
            boundary = parsed.get_boundary()
            marker = b"Content-Type: message/rfc822\r\n\r\n"
            raw = body[body.index(marker) + len(marker): body.rindex(b"\r\n--" + boundary.encode())]
            if api.refuse is not None and api.refuse in raw:
                return self.reply(400, {"error": {"code": 400, "message": "Invalid message"}})
            gmail_id = f"id{len(api.messages) + 1:04d}"
            api.messages[gmail_id] = raw
            labels = json.loads(meta.get_payload(decode=True))["labelIds"]
            if api.stall_imports:
                api.stall_imports -= 1
                api.release.wait(10)  # stored; the answer comes after the client gave up
            self.reply(200, {"id": gmail_id, "threadId": gmail_id, "labelIds": labels})

        def do_GET(self) -> None:
            self.handle_any("GET")

        def do_POST(self) -> None:
            self.handle_any("POST")

    return Handler

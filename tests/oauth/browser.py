"""A stand-in for the user's browser in the local-redirect flows (RFC 8252 §7.3):
``webbrowser`` is replaced by one that follows the authorization URL (the fake
authority answers at once, as after the user consented: a redirect, or msal's
``form_post`` form) to the client's one-shot server on localhost, from a thread,
as a real browser runs beside the client."""

from __future__ import annotations

import html
import re
import ssl
import threading
import urllib.parse
import urllib.request
import webbrowser
from pathlib import Path

import pytest

_FORM = re.compile(r'<form method="post" action="([^"]*)">')
_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


class FakeBrowser:
    """Records the URLs it was asked to open, and opens each in a thread."""

    def __init__(self, ca_file: Path) -> None:
        self.opened: list[str] = []
        self.threads: list[threading.Thread] = []
        self._context = ssl.create_default_context(cafile=str(ca_file))

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)
        thread = threading.Thread(target=self._visit, args=(url,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return True

    def _visit(self, url: str) -> None:
        """GET ``url`` (a 302 to localhost is followed); a page holding a form (the
        OpenID ``form_post`` response mode) is submitted, as its script would."""
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._context))
        with opener.open(url, timeout=10) as answer:
            page = answer.read().decode("utf-8", "replace")
        form = _FORM.search(page)
        if form is not None:
            fields = {name: html.unescape(value) for name, value in _INPUT.findall(page)}
            body = urllib.parse.urlencode(fields).encode()
            with opener.open(html.unescape(form.group(1)), data=body, timeout=10) as answer:
                answer.read()


def install(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> FakeBrowser:
    """Replace ``webbrowser.open`` and ``webbrowser.get(...)`` with the fake."""
    browser = FakeBrowser(ca_file)
    monkeypatch.setattr(webbrowser, "open", browser.open)
    monkeypatch.setattr(webbrowser, "get", lambda using=None: browser)
    return browser

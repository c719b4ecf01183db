"""The Gmail API sink against a local server that checks Google's documented request shape.

This is the one sink not tested against the real service.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from popkeep.config.secrets import SecretSource
from popkeep.config.sink_types import GmailSinkConfig, gmail_sink
from popkeep.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    DeliveryRefused,
    MessageRefused,
    SignInRequired,
)
from popkeep.sinks import gmail as gmail_module
from popkeep.sinks.base import Delivery, delivery_key
from popkeep.sinks.gmail import SCOPES, GmailSink, authorize
from popkeep.spool import SpooledMessage
from popkeep.testing.certs import TestCerts

from ..fixtures.http import serving
from ..oauth.browser import install
from ..oauth.fake_authority import Authority, serve
from . import fake_gmail
from .fake_gmail import TOKEN, FakeGmail, make_handler

MESSAGE = (
    b"From: a@example.org\r\nTo: me@gmail.com\r\nMessage-ID: <abc.123@example.org>\r\n"
    b"Date: Tue, 03 Feb 2026 10:00:00 +0000\r\nSubject: hello\r\n\r\n"
    b"--not-a-boundary\r\n\xe9 8-bit body\r\n"
)


@pytest.fixture
def api() -> Iterator[tuple[FakeGmail, str]]:
    state = FakeGmail()
    with serving(make_handler(state)) as base:
        yield state, base
    assert state.errors == []


def sink(endpoint: str, token: str = TOKEN, **kw: Any) -> GmailSink:
    values: dict[str, Any] = {
        "name": "gmail", "api_endpoint": endpoint, "backoff": 0.01,
        "oauth_token": SecretSource("literal", token), "labels": ("INBOX", "Existing", "ISP/New"),
    }
    values.update(kw)
    return GmailSink(GmailSinkConfig(**values))


def make(data: bytes = MESSAGE) -> Delivery:
    message = SpooledMessage.from_bytes(data)
    return Delivery("isp", "u", delivery_key("isp", message.sha256), message)


def test_import_request_shape_and_labels(api: tuple[FakeGmail, str]) -> None:
    state, endpoint = api
    receipts = asyncio.run(sink(endpoint).deliver([make()]))
    assert [r.ref for r in receipts] == ["id0001"]
    assert state.messages["id0001"] == MESSAGE  # bytes unchanged
    created = [r for r in state.requests if r["method"] == "POST" and r["path"].endswith("labels")]
    assert [json.loads(r["body"])["name"] for r in created] == ["ISP/New"]
    (imp,) = [r for r in state.requests if r["path"].endswith("/import")]
    assert imp["query"] == {"uploadType": ["multipart"], "internalDateSource": ["dateHeader"],
                            "neverMarkSpam": ["false"], "processForCalendar": ["false"]}
    meta = imp["body"].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
    assert json.loads(meta) == {"labelIds": ["INBOX", "Label_1", "Label_3"]}


def test_never_mark_spam_skips_the_spam_classification(api: tuple[FakeGmail, str]) -> None:
    """Issue 18 item 5: imports go through Gmail's spam classifier unless the sink
    says ``never_mark_spam = true``; the converted config reaches the request."""
    state, endpoint = api
    config = gmail_sink({"name": "g", "oauth_token_command": "true",
                         "never_mark_spam": True, "api_endpoint": endpoint}, "c")
    assert config.never_mark_spam
    asyncio.run(sink(endpoint, never_mark_spam=config.never_mark_spam).deliver([make()]))
    (imp,) = [r for r in state.requests if r["path"].endswith("/import")]
    assert imp["query"]["neverMarkSpam"] == ["true"]


def test_429_then_200_and_500_then_200(api: tuple[FakeGmail, str]) -> None:
    state, endpoint = api
    gmail = sink(endpoint)
    asyncio.run(gmail.open())
    state.failures = [(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}),
                      (500, {"error": {"code": 500}}),
                      (503, {"error": {"code": 503}})]
    assert [r.ref for r in asyncio.run(gmail.deliver([make()]))] == ["id0001"]
    imports = [r for r in state.requests if r["path"].endswith("/import")]
    # 429: not processed, sent again. 500: maybe processed: a search (answered 503,
    # then retried) finds nothing, and only then the import is sent again.
    assert len(imports) == 3 and len(state.messages) == 1
    searches = [r for r in state.requests if r["path"].endswith("/messages")]
    assert len(searches) == 2


def test_import_answered_after_the_timeout_is_found_not_sent_twice(
    api: tuple[FakeGmail, str]
) -> None:
    state, endpoint = api
    gmail = sink(endpoint, timeout=0.5)
    asyncio.run(gmail.open())
    state.stall_imports = 1
    try:
        receipts = asyncio.run(gmail.deliver([make()]))
    finally:
        state.release.set()
    assert [r.ref for r in receipts] == ["id0001"]
    assert list(state.messages) == ["id0001"]  # one copy
    assert len([r for r in state.requests if r["path"].endswith("/import")]) == 1


def test_a_refused_import_carries_the_receipts_of_those_before_it(
    api: tuple[FakeGmail, str]
) -> None:
    state, endpoint = api
    gmail = sink(endpoint)
    asyncio.run(gmail.open())
    first = make()
    second = make(MESSAGE.replace(b"abc.123", b"abc.456"))
    state.failures = [(200, {"id": "id0001"}),
                      (400, {"error": {"code": 400, "message": "Invalid message"}})]
    with pytest.raises(MessageRefused, match="HTTP 400") as info:
        asyncio.run(gmail.deliver([first, second, make(MESSAGE + b"x")]))
    assert [r.ref for r in info.value.delivered] == ["id0001"]


def test_gives_up_after_max_retries(api: tuple[FakeGmail, str]) -> None:
    state, endpoint = api
    gmail = sink(endpoint, max_retries=2)
    asyncio.run(gmail.open())
    state.failures = [(500, {})] * 20  # a search that cannot answer: never resent blindly
    with pytest.raises(DeliveryError, match="HTTP 500") as info:
        asyncio.run(gmail.deliver([make()]))
    assert type(info.value) is DeliveryError and state.messages == {}


def test_bad_request_is_refused_and_bad_token_is_auth(api: tuple[FakeGmail, str]) -> None:
    state, endpoint = api
    gmail = sink(endpoint)
    asyncio.run(gmail.open())
    state.failures = [(400, {"error": {"code": 400, "message": "Invalid message"}})]
    with pytest.raises(DeliveryRefused, match="HTTP 400"):
        asyncio.run(gmail.deliver([make()]))
    with pytest.raises(AuthError, match="HTTP 401"):
        asyncio.run(sink(endpoint, token="expired").open())


def test_find_by_rfc822msgid_confirms_content(api: tuple[FakeGmail, str]) -> None:
    state, endpoint = api
    first = make()
    asyncio.run(sink(endpoint).deliver([first]))
    again = make(MESSAGE)  # re-fetched after a crash: same key
    found = asyncio.run(sink(endpoint).find(again.key, again.message))
    assert found is not None and found.ref == "id0001"
    searches = [r for r in state.requests if r["path"].endswith("/messages")]
    assert searches[0]["query"]["q"] == ["rfc822msgid:abc.123@example.org"]
    other = make(MESSAGE.replace(b"hello", b"HELLO"))  # same Message-ID, other bytes
    assert asyncio.run(sink(endpoint).find(other.key, other.message)) is None
    assert asyncio.run(sink(endpoint).find(first.key)) is None  # no message → cannot tell


def test_trace_headers_only_when_configured(api: tuple[FakeGmail, str]) -> None:
    state, endpoint = api
    delivery = make()
    asyncio.run(sink(endpoint, trace_headers=True).deliver([delivery]))
    stored = state.messages["id0001"]
    assert stored.startswith(b"X-Popkeep-Account: isp\r\nReceived: by popkeep (sink gmail) id ")
    assert stored.endswith(MESSAGE)
    found = asyncio.run(sink(endpoint, trace_headers=True).find(delivery.key, delivery.message))
    assert found is not None


def test_endpoint_must_be_https_or_loopback() -> None:
    with pytest.raises(ConfigError, match="must be https"):
        sink("http://gmail.example.com")
    sink("https://gmail.googleapis.com")


def token_file_sink(endpoint: str, path: Path, token: str, expiry: str) -> GmailSink:
    """A sink whose tokens are in ``path``, as ``popkeep auth`` leaves them."""
    path.write_text(json.dumps({
        "token": token, "refresh_token": "rt-0", "client_id": "id.apps.googleusercontent.com",
        "client_secret": "cs", "token_uri": "https://oauth2.googleapis.com/token",
        "scopes": list(SCOPES), "expiry": expiry}))
    return sink(endpoint, oauth_token=None, token_file=path)


@pytest.fixture
def authority(certs: TestCerts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    """The fake sign-in server, in place of Google's for the sink's token file."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    with serve(certs.server_context()) as state:
        monkeypatch.setattr(gmail_module, "google_tokens",
                            partial(gmail_module.google_tokens, authority=state.base))
        yield state


def test_token_file_refused_by_the_api_is_renewed_and_saved_0600(
    api: tuple[FakeGmail, str], authority: Authority, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token that looks valid here but the API refuses (revoked early) is refreshed
    once with the file's refresh token, and the new one is saved (mode 0600)."""
    state, endpoint = api
    monkeypatch.setattr(fake_gmail, "TOKEN", "at-1")  # what the authority issues first
    path = tmp_path / "token.json"
    gmail = token_file_sink(endpoint, path, "revoked", "2999-01-01T00:00:00Z")
    old = os.umask(0)
    try:
        assert [r.ref for r in asyncio.run(gmail.deliver([make()]))] == ["id0001"]
    finally:
        os.umask(old)
    assert [(m, p) for m, p, _form in authority.requests] == [("POST", "/token")]
    assert authority.requests[0][2]["refresh_token"] == ["rt-0"]
    assert [r["headers"]["Authorization"] for r in state.requests[:2]] == [
        "Bearer revoked", "Bearer at-1"]
    assert json.loads(path.read_text())["token"] == "at-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_file_with_a_revoked_refresh_token_names_popkeep_auth(
    api: tuple[FakeGmail, str], authority: Authority, tmp_path: Path
) -> None:
    _state, endpoint = api
    authority.revoked.add("rt-0")
    gmail = token_file_sink(endpoint, tmp_path / "token.json", "old", "2000-01-01T00:00:00Z")
    with pytest.raises(SignInRequired, match=r"^sink \"gmail\": Google refused to renew the "
                       r"sign-in: invalid_grant.*; run: popkeep auth gmail$"):
        asyncio.run(gmail.open())


def test_authorize_signs_in_with_the_client_of_client_secret_file(
    api: tuple[FakeGmail, str], authority: Authority, tmp_path: Path, certs: TestCerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """popkeep auth for the sink: the browser flow with the console's client JSON, the
    tokens into token_file (0600), and the sink delivers with them."""
    _state, endpoint = api
    browser = install(monkeypatch, certs.ca_file)
    client = tmp_path / "client_secret.json"
    client.write_text(json.dumps({"installed": {
        "client_id": "id-7.apps.googleusercontent.com", "client_secret": "cs-7"}}))
    token = tmp_path / "gmail" / "token.json"
    config = GmailSinkConfig(name="gmail", token_file=token, client_secret_file=client,
                             api_endpoint=endpoint, labels=("INBOX",))
    assert authorize(config, lambda _line: None) == str(token)
    (url,) = browser.opened
    assert "client_id=id-7.apps.googleusercontent.com" in url and "gmail.insert" in url
    saved = json.loads(token.read_text())
    assert (saved["client_id"], saved["client_secret"]) == ("id-7.apps.googleusercontent.com",
                                                            "cs-7")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    monkeypatch.setattr(fake_gmail, "TOKEN", saved["token"])
    assert [r.ref for r in asyncio.run(GmailSink(config).deliver([make()]))] == ["id0001"]


def test_authorize_reads_the_client_of_client_secret_file(tmp_path: Path) -> None:
    client = tmp_path / "client_secret.json"
    client.write_text('{"web": {"client_id": "id-1"}}')
    config = GmailSinkConfig(name="g", token_file=tmp_path / "t.json",
                             client_secret_file=client)
    with pytest.raises(ConfigError, match=f"client_secret_file {client}: not an OAuth client"):
        authorize(config, lambda _line: None)
    with pytest.raises(ConfigError, match="set client_secret_file and token_file"):
        authorize(config._replace(client_secret_file=None), lambda _line: None)


def test_config_converter() -> None:
    got = gmail_sink({"type": "gmail", "name": "g", "token_file": "~/t.json",
                      "labels": ["INBOX", "ISP"], "process_for_calendar": True}, "c")
    assert got.labels == ("INBOX", "ISP") and got.process_for_calendar
    assert not got.never_mark_spam  # Gmail's spam classification by default (issue 18 item 5)
    assert got.token_file is not None and "~" not in str(got.token_file)
    with pytest.raises(ConfigError, match="exactly one of token_file, oauth_token_command"):
        gmail_sink({"name": "g"}, "c")

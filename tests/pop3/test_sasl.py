"""The OAuth 2.0 SASL messages (pop3/sasl.py): bytes in the documented shapes."""

from __future__ import annotations

import base64
import json

import pytest

from popkeep.pop3 import sasl


def test_xoauth2_is_the_documented_string() -> None:
    # Google's and Microsoft's documented format: user=U ^A auth=Bearer T ^A ^A
    assert sasl.xoauth2("me@gmail.com", "ya29.t") == (
        b"user=me@gmail.com\x01auth=Bearer ya29.t\x01\x01"
    )


def test_oauthbearer_is_rfc7628() -> None:
    # RFC 7628 §4.1 example shape: n,a=user@example.com,^Ahost=…^Aport=…^Aauth=Bearer …^A^A
    assert sasl.oauthbearer("user@example.com", "vF9dft4qmT", "server.example.com", 143) == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143"
        b"\x01auth=Bearer vF9dft4qmT\x01\x01"
    )
    # RFC 5801 §4 saslname escaping
    assert sasl.oauthbearer("a=b,c", "t", "h", 1).startswith(b"n,a=a=3Db=2Cc,\x01")


def test_initial_and_failure_responses_are_base64() -> None:
    got = sasl.initial_response("XOAUTH2", "u", "t", "h", 995)
    assert base64.b64decode(got) == sasl.xoauth2("u", "t")
    got = sasl.initial_response("OAUTHBEARER", "u", "t", "h", 995)
    assert base64.b64decode(got) == sasl.oauthbearer("u", "t", "h", 995)
    assert sasl.failure_response("XOAUTH2") == ""
    assert base64.b64decode(sasl.failure_response("OAUTHBEARER")) == b"\x01"  # RFC 7628 §3.2.3
    with pytest.raises(ValueError, match="PLAIN"):
        sasl.initial_response("PLAIN", "u", "t", "h", 1)


def test_raw_messages_for_imapclient() -> None:
    """The IMAP sink hands IMAPClient the messages before base64 (it encodes them)."""
    assert sasl.client_message("XOAUTH2", "u", "t", "h", 993) == sasl.xoauth2("u", "t")
    assert sasl.client_message("OAUTHBEARER", "u", "t", "h", 993) == sasl.oauthbearer(
        "u", "t", "h", 993)
    assert sasl.failure_message("XOAUTH2") == b""
    assert sasl.failure_message("OAUTHBEARER") == b"\x01"  # RFC 7628 §3.2.3


@pytest.mark.parametrize(("challenge", "detail"), [
    (base64.b64encode(json.dumps({"status": "401", "schemes": "bearer",
                                  "scope": "https://mail.google.com/"}).encode()).decode(),
     "status 401, scope https://mail.google.com/"),
    (base64.b64encode(b'{"status":"invalid_token"}').decode(), "status invalid_token"),
    ("not base64 at all!", "not base64 at all!"),
    (base64.b64encode(b"[1, 2]").decode(), base64.b64encode(b"[1, 2]").decode()),
])
def test_error_detail(challenge: str, detail: str) -> None:
    assert sasl.error_detail(challenge) == detail

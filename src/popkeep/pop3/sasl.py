"""The SASL messages of OAuth 2.0 sign-in, as the mail protocols carry them.

Owns: the client's first message of the two bearer-token mechanisms and what the
client answers when the server refuses the token, byte for byte:

- ``XOAUTH2`` (Google's and Microsoft's documented mechanism):
  ``user=U ^A auth=Bearer T ^A ^A``; on failure the server sends a challenge
  holding a base64 JSON error and the client answers with an empty line, after
  which the server sends its failure (-ERR in POP3, a tagged NO in IMAP).
- ``OAUTHBEARER`` (RFC 7628 §3.1): a GS2 header (RFC 5801 §4) then the kvpairs
  ``host``, ``port`` and ``auth``; on failure the server sends a base64 JSON
  error challenge and the client answers with a single ``^A`` (RFC 7628 §3.2.3).

Used by the POP3 source (RFC 5034 AUTH) and the IMAP sink (RFC 3501 AUTHENTICATE).
Pure: no I/O, no clock; the token is never logged here (callers send these
through masked command logging).
"""

from __future__ import annotations

import base64
import binascii

__all__ = [
    "MECHANISMS",
    "client_message",
    "error_detail",
    "failure_message",
    "failure_response",
    "initial_response",
    "oauthbearer",
    "xoauth2",
]

#: The bearer-token mechanisms popkeep speaks, by the name servers advertise.
MECHANISMS = ("XOAUTH2", "OAUTHBEARER")


def xoauth2(user: str, token: str) -> bytes:
    """The XOAUTH2 client message (before base64): ``user=U^Aauth=Bearer T^A^A``."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str, host: str, port: int) -> bytes:
    """The RFC 7628 §3.1 client message (before base64).

    The authzid in the GS2 header escapes ``=`` and ``,`` as RFC 5801 §4 says.
    """
    saslname = user.replace("=", "=3D").replace(",", "=2C")
    return (
        f"n,a={saslname},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    ).encode()


def client_message(mechanism: str, user: str, token: str, host: str, port: int) -> bytes:
    """The first client message of ``mechanism`` (``XOAUTH2`` or ``OAUTHBEARER``),
    before base64 (IMAPClient encodes it itself)."""
    if mechanism == "XOAUTH2":
        return xoauth2(user, token)
    if mechanism == "OAUTHBEARER":
        return oauthbearer(user, token, host, port)
    raise ValueError(f"not a bearer-token mechanism: {mechanism}")


def initial_response(mechanism: str, user: str, token: str, host: str, port: int) -> str:
    """The base64 first client message of ``mechanism`` (``XOAUTH2`` or ``OAUTHBEARER``)."""
    raw = client_message(mechanism, user, token, host, port)
    return base64.b64encode(raw).decode("ascii")


def failure_message(mechanism: str) -> bytes:
    """What the client answers (before base64) to a challenge that follows its token:
    the server's error. XOAUTH2: an empty response; OAUTHBEARER: ``^A`` (RFC 7628 §3.2.3)."""
    return b"\x01" if mechanism == "OAUTHBEARER" else b""


def failure_response(mechanism: str) -> str:
    """:func:`failure_message` in base64, as POP3's AUTH continuation carries it."""
    return base64.b64encode(failure_message(mechanism)).decode("ascii")


def error_detail(challenge: str) -> str:
    """The server's error challenge (base64 JSON, RFC 7628 §3.2.2) in a few words,
    e.g. ``status 401, scope https://mail.google.com/``; the raw text when it is not
    base64 JSON. Untrusted: callers put it in an error, whose text is escaped."""
    import json  # only after a refused token: json costs a millisecond at every start

    try:
        value = json.loads(base64.b64decode(challenge, validate=True))
    except (binascii.Error, ValueError):
        return challenge[:200]
    if not isinstance(value, dict):
        return challenge[:200]
    words = [f"{key} {value[key]}" for key in ("status", "scope") if key in value]
    return ", ".join(words)[:200] or challenge[:200]

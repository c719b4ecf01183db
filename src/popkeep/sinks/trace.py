"""Small, bounded reads of a message's header block and the optional trace headers.

Owns: finding ``Message-ID``, ``Date`` and ``Return-Path`` in the header block
(first 64 KiB at most; RFC 5322 §2.2 unfolding), the trace lines a sink prepends
when ``trace_headers = true``, and the CRLF → LF conversion for sinks that store
local line endings (MDA, mbox). Must not: rewrite a message in any other way —
the default is that a sink stores the bytes as received.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from popkeep.sinks.base import Delivery
from popkeep.spool import SpooledMessage

HEADER_LIMIT = 64 << 10  #: octets of the message searched for headers
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$")
_SAFE = re.compile(r"[^\x21-\x7e ]")


def header_block(message: SpooledMessage) -> bytes:
    """The header block (up to the first empty line), at most :data:`HEADER_LIMIT` octets."""
    head = b""
    for chunk in message.chunks(HEADER_LIMIT):
        head += chunk
        if len(head) >= HEADER_LIMIT:
            break
    head = head[:HEADER_LIMIT]
    match = re.search(rb"\r?\n\r?\n", head)
    return head[: match.start()] if match else head


def header_value(block: bytes, name: str) -> str | None:
    """The unfolded value of the first field called ``name`` (RFC 5322 §2.2.3), or None."""
    wanted = name.lower().encode("ascii")
    value: bytes | None = None
    for line in re.split(rb"\r?\n", block):
        if value is not None:
            if line[:1] in (b" ", b"\t"):
                value += b" " + line.strip()
                continue
            break
        match = _FIELD.match(line)
        if match and match.group(1).lower() == wanted:
            value = match.group(2).strip()
    return None if value is None else value.decode("utf-8", "replace")


def message_id(message: SpooledMessage) -> str | None:
    """The ``Message-ID`` as written (with its angle brackets), if present and sane."""
    value = header_value(header_block(message), "Message-ID")
    if not value or _SAFE.search(value) or len(value) > 998:
        return None
    return value


def date_header(message: SpooledMessage) -> datetime | None:
    """The ``Date`` header as an aware datetime, or None when absent or unparseable."""
    from email.utils import parsedate_to_datetime  # lazy: keeps `popkeep fetch` light

    value = header_value(header_block(message), "Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


def envelope_sender(message: SpooledMessage) -> str:
    """The address from ``Return-Path`` (RFC 5321 §4.4), else ``MAILER-DAEMON``."""
    value = header_value(header_block(message), "Return-Path") or ""
    match = re.search(r"<([^<>\s]*)>", value)
    address = match.group(1) if match else value.strip()
    if not address or _SAFE.search(address) or " " in address:
        return "MAILER-DAEMON"
    return address


def trace_lines(delivery: Delivery, sink: str, now: datetime) -> bytes:
    """``X-Popkeep-Account`` and a ``Received:``-style line, CRLF-terminated.

    The Received line carries ``id <key>`` so a sink can search for it (RFC 5321
    §4.4 allows an ``id`` clause). Names are reduced to printable ASCII.
    """
    from email.utils import format_datetime  # lazy, as in date_header

    account = _SAFE.sub("?", delivery.account)
    where = _SAFE.sub("?", sink)
    stamp = format_datetime(now)
    return (
        f"X-Popkeep-Account: {account}\r\n"
        f"Received: by popkeep (sink {where}) id {delivery.key}; {stamp}\r\n"
    ).encode("ascii")


def network_chunks(delivery: Delivery, prefix: bytes = b"") -> Iterator[bytes]:
    """The message as stored by a CRLF sink: optional ``prefix`` then the bytes unchanged."""
    if prefix:
        yield prefix
    yield from delivery.message.chunks()

"""A message's identity beyond its UIDL: a digest of its header.

Owns: which header fields identify a message (:data:`IDENTITY_FIELDS`), and the
digest over them (:func:`header_digest`), computed alike from the reply to
``TOP n 0`` (RFC 1939 §7) and from a retrieved message (:func:`header_of`), so a
message collected once can be recognised in a later session without fetching it
again (docs/guarantees.md, "sources: POP3"). Pure functions of bytes; no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

#: The header fields a message's identity digest covers (see :func:`header_digest`):
#: those its author or the delivering MTAs set, never those a POP3 server may add or
#: rewrite while the message sits in the maildrop (Status, X-UIDL, Content-Length…).
IDENTITY_FIELDS = frozenset(
    {b"message-id", b"date", b"from", b"sender", b"to", b"cc", b"subject", b"received"}
)
#: at most this many octets of a header are read for its digest
HEADER_LIMIT = 256 << 10
#: where a header field ends: a line end not followed by white space (a folded line,
#: RFC 5322 §2.2.3). Its literal first octet lets the regex engine skip to each LF
#: (``\r?\n`` made it try every position: ≈ 70 instructions per octet); the CR it
#: leaves on a field is white space to the digest.
_FIELD_END = re.compile(rb"\n(?![ \t])")


def header_of(chunks: Iterable[bytes], limit: int = HEADER_LIMIT) -> bytes:
    """The header section of a message (up to its first empty line, RFC 5322 §2.1),
    at most ``limit`` octets; reads ``chunks`` only as far as needed.

    The end is the first CRLF CRLF in the octets read so far, else the first LF LF,
    looked for as each chunk arrives (a stored digest depends on this rule: keep it).
    So a message with a bare LF LF before its CRLF CRLF ends where its chunking
    says; a digest that differs then only makes the message count as another one
    (fetched, adopted by its content; docs/guarantees.md point 10). A header
    that ends in the first chunk, the usual case, is found in place: only the header
    is copied, never the message (a 2k fetch digests every message it receives)."""
    buf = bytearray()
    for chunk in chunks:
        if not buf:
            end = _header_end(chunk, 0, limit + 4)
            if end >= 0:
                return bytes(chunk[:end])[:limit]
            buf += chunk[: limit + 4]
        else:
            start = max(0, len(buf) - 3)  # a line end split between chunks
            buf += chunk[: limit + 4 - len(buf)]  # never copy a whole big message
            end = _header_end(buf, start, len(buf))
            if end >= 0:
                return bytes(buf[:end])[:limit]
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def _header_end(data: bytes | bytearray, start: int, stop: int) -> int:
    """Where the header in ``data[:stop]`` ends (after its last line's end), searching
    from ``start``: at the first CRLF CRLF, else the first LF LF; -1 if neither."""
    # A line-feed form (Maildir's LF copy) has no CR: one memchr rules CRLF CRLF out
    # without the slower four-octet search through the whole message.
    if data.find(b"\r", start, stop) >= 0:
        cut = data.find(b"\r\n\r\n", start, stop)
        if cut >= 0:
            return cut + 2
    cut = data.find(b"\n\n", start, stop)
    return cut + 1 if cut >= 0 else -1


def header_digest(header: bytes) -> str:
    """A digest telling two messages apart by their header: sha256 (hex) over the
    :data:`IDENTITY_FIELDS` in order, each unfolded with runs of white space made one
    space (RFC 5322 §2.2.3), so CRLF or LF, folding and fields added by the server do
    not change it. A header with none of those fields is digested whole, likewise
    normalised. The same header from ``TOP n 0`` (RFC 1939 §7) and from RETR gives
    the same digest; messages differing only in their body give the same digest too
    (the size tells those apart)."""
    picked: list[bytes] = []  # each normalised as it is picked: no second pass
    for field in _FIELD_END.split(header):
        name, colon, _ = field.partition(b":")
        if colon and name.strip().lower() in IDENTITY_FIELDS:
            picked.append(b" ".join(field.split()))
    text = b"\n".join(picked) if picked else b" ".join(header.split())
    return hashlib.sha256(text).hexdigest()

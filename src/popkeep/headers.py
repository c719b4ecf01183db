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


def header_of(chunks: Iterable[bytes], limit: int = HEADER_LIMIT) -> bytes:
    """The header section of a message (up to its first empty line, RFC 5322 §2.1),
    at most ``limit`` octets; reads ``chunks`` only as far as needed."""
    buf = bytearray()
    for chunk in chunks:
        start = max(0, len(buf) - 3)
        buf += chunk[: limit + 4 - len(buf)]  # never copy a whole big message
        for end in (b"\r\n\r\n", b"\n\n"):
            cut = buf.find(end, start)
            if cut >= 0:
                return bytes(buf[: cut + len(end) // 2])[:limit]
        if len(buf) >= limit:
            break
    return bytes(buf[:limit])


def header_digest(header: bytes) -> str:
    """A digest telling two messages apart by their header: sha256 (hex) over the
    :data:`IDENTITY_FIELDS` in order, each unfolded with runs of white space made one
    space (RFC 5322 §2.2.3), so CRLF or LF, folding and fields added by the server do
    not change it. A header with none of those fields is digested whole, likewise
    normalised. The same header from ``TOP n 0`` (RFC 1939 §7) and from RETR gives
    the same digest; messages differing only in their body give the same digest too
    (the size tells those apart)."""
    picked: list[bytes] = []
    for field in re.split(rb"\r?\n(?![ \t])", header):
        name, colon, _ = field.partition(b":")
        if colon and name.strip().lower() in IDENTITY_FIELDS:
            picked.append(field)
    text = b"\n".join(b" ".join(f.split()) for f in picked or [header])
    return hashlib.sha256(text).hexdigest()

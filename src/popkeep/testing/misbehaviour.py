"""Ways the scripted POP3 server can break the rules, on purpose.

Owns :class:`Misbehaviour`, a frozen set of options (each off by default) and
the small pure hooks the server calls where a misbehaviour changes what it
says: how uids and sizes are shown, how listing lines are malformed, and what
RETR of a given message does instead of sending it. The server asks these
hooks; it holds no misbehaviour logic of its own beyond acting on their answer.
No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: -ERR texts for :attr:`Misbehaviour.auth_error` (RFC 2449 §8, RFC 3206).
IN_USE = b"[IN-USE] Do you have another POP session running?"
LOGIN_DELAY = b"[LOGIN-DELAY 600] Wait 10 minutes between logins"
SYS_TEMP = b"[SYS/TEMP] Maildrop temporarily unavailable"
SYS_PERM = b"[SYS/PERM] Account disabled"
AUTH_FAILED = b"[AUTH] Invalid credentials"

#: UIDLs a client must never turn into paths or trust blindly (RFC 1939 §7
#: allows 0x21-0x7E, 1-70 octets; these break that or are hostile).
WEIRD_UIDLS: tuple[bytes, ...] = (
    b"../../etc/passwd",
    b"a/b",
    b"x" * 75,
    "ünï-cödé".encode(),
)

RetrAction = Literal["drop", "huge_line", "endless"]


@dataclass(frozen=True)
class Misbehaviour:
    """Scripted faults; combine freely. Message numbers are 1-based, per session."""

    greeting: bytes | None = None  #: replaces the +OK greeting, e.g. b"220 smtp ready"
    silent: bool = False  #: accept the connection and never say anything
    trickle_delay: float | None = None  #: send one byte per this many seconds
    bare_lf: bool = False  #: end every line with LF instead of CRLF
    no_capa: bool = False  #: answer CAPA with -ERR (pre-RFC 2449 server)
    auth_error: bytes | None = None  #: answer every login with "-ERR " + this
    stls_refused: bool = False  #: advertise STLS, then answer it with -ERR
    stls_inject: bool = False  #: send "+OK injected" in the same write as the STLS +OK
    no_uidl: bool = False  #: UIDL is not supported (-ERR, not in CAPA)
    no_top: bool = False  #: TOP is not supported (-ERR, not in CAPA; optional, RFC 1939 §7)
    duplicate_uidl: bool = False  #: messages 1 and 2 show the same uid
    changing_uidl: bool = False  #: every session shows different uids
    weird_uidls: tuple[bytes, ...] = ()  #: shown instead of the uids of messages 1, 2, …
    malformed_listings: bool = False  #: LIST and UIDL lines after the first are garbage
    endless_listing: bool = False  #: LIST and UIDL responses never end
    #: raw lines added at the end of the UIDL listing ("9 ghost", "3 again", "junk")
    extra_uidl_lines: tuple[bytes, ...] = ()
    #: message numbers LIST leaves out (and answers ``LIST n`` for with -ERR)
    list_omits: frozenset[int] = frozenset()
    list_size_delta: int = 0  #: LIST/STAT sizes are off by this many octets
    drop_in_retr: tuple[int, int] | None = None  #: (message, octets sent) then close
    huge_line_in_retr: int | None = None  #: RETR of this message sends a line without newline
    huge_line_size: int = 10 * 1024 * 1024
    endless_retr: int | None = None  #: RETR of this message never ends
    drop_after_dele: bool = False  #: close the connection right after a DELE reply
    refuse_dele: frozenset[int] = frozenset()  #: -ERR to DELE of these numbers ("expunged")
    drop_before_quit_reply: bool = False  #: close on QUIT without replying (no UPDATE)


def shown_uid(mis: Misbehaviour, number: int, uid: str, session: int) -> bytes:
    """The unique-id the server shows for message ``number`` (RFC 1939 §7 UIDL)."""
    if number <= len(mis.weird_uidls):
        return mis.weird_uidls[number - 1]
    if mis.duplicate_uidl and number in (1, 2):
        return b"duplicated-uid"
    if mis.changing_uidl:
        return f"s{session}-{uid}".encode()[:70]
    return uid.encode("ascii")


def shown_size(mis: Misbehaviour, size: int) -> int:
    """The size LIST and STAT report for a message of ``size`` octets."""
    return max(0, size + mis.list_size_delta)


_MANGLED = (b"%d", b"two %d", b"%d -%d", b"%d  %d %d")


def listing_line(mis: Misbehaviour, index: int, number: int, value: bytes) -> bytes:
    """One line of a LIST/UIDL multi-line response, malformed when asked to be.

    ``index`` is the line's position in the response; the first stays valid.
    """
    if not mis.malformed_listings or index == 0:
        return b"%d %s\r\n" % (number, value)
    pattern = _MANGLED[index % len(_MANGLED)]
    filled = pattern.replace(b"%d", b"%d" % number, 1).replace(b"%d", value)
    return filled + b"\r\n"


def retr_action(mis: Misbehaviour, number: int) -> RetrAction | None:
    """What RETR of message ``number`` does instead of sending it, if anything."""
    if mis.drop_in_retr is not None and mis.drop_in_retr[0] == number:
        return "drop"
    if mis.huge_line_in_retr == number:
        return "huge_line"
    if mis.endless_retr == number:
        return "endless"
    return None

"""The state files of the POP3 clients popkeep takes over from: which messages they
collected already (``popkeep import-state``, docs/cli.md).

Owns: reading each client's list of unique-ids (RFC 1939 §7 UIDL) into
:class:`~popkeep.state.base.Collected` entries, keyed as popkeep keys a listing
(:func:`popkeep.pop3.listing.uid_key`), with the first-retrieval time where the
file has one; and picking the list of one mailbox (server and user) out of a file
that holds several. The formats, as the tools write them:

- **getmail6** ``oldmail-<server>-<port>-<user>``: one mailbox per file; a line per
  message, ``<uid> NUL <seconds since the epoch>`` (when getmail first retrieved it).
- **mpop** UIDL file (``~/.mpop_uidls``, ``uidls_file``): ``#`` comments; a line
  starting with a space, `` <count> <host> <user>``, begins a mailbox's list, and
  ``<count>`` lines of one uid each follow. No times.
- **fetchmail** ``.fetchids``: a line per message, ``<user>@<server> <uid>`` (the user
  may hold ``@`` itself: the server is what follows the last one). No times.
- **Thunderbird** ``popstate.dat`` (in the account's folder of the profile): ``#``
  comments, ``*<host> <user>`` begins a mailbox's list, then ``<status> <uid>
  [<seconds since the epoch>]`` per message. Status ``k`` (kept on the server) and
  ``d`` (marked to be deleted from it) were downloaded whole; ``b`` (too big: only
  the header was downloaded) and ``f`` (body still to fetch) were not, so they are
  left out and popkeep collects them.

Must not: touch the store or a server (the caller records the entries with
:meth:`~popkeep.state.base.StateStore.mark_collected`). Pure functions of bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

from popkeep.errors import ConfigError
from popkeep.pop3.listing import uid_key
from popkeep.state.base import Collected

#: Thunderbird's statuses of a message downloaded whole (see the module docstring)
_THUNDERBIRD_COLLECTED = frozenset({b"k", b"d"})
#: times beyond this are not plausible seconds since the epoch (year 2286)
_MAX_SECONDS = 10**10


class MailboxList(NamedTuple):
    """One mailbox's list in a client's state file."""

    host: str | None  #: None where the file does not say (getmail6: in its name)
    user: str | None
    entries: list[Collected]


def _lines(data: bytes) -> Iterator[bytes]:
    for line in data.splitlines():
        if line.strip() and not line.startswith(b"#"):
            yield line


def _time(token: bytes) -> datetime | None:
    """Seconds since the epoch → an aware datetime; None when not a plausible time."""
    if not token.isdigit() or not 0 < int(token) < _MAX_SECONDS:
        return None
    return datetime.fromtimestamp(int(token), UTC)


def _text(token: bytes) -> str:
    return token.decode("utf-8", "replace")


def read_getmail(data: bytes) -> list[MailboxList]:
    """A getmail6 ``oldmail-…`` file (one mailbox)."""
    entries = []
    for line in _lines(data):
        uid, _, seconds = line.partition(b"\0")
        entries.append(Collected(uid_key(uid), _time(seconds.strip())))
    return [MailboxList(None, None, entries)]


def read_mpop(data: bytes) -> list[MailboxList]:
    """An mpop UIDL file (its mailboxes in order)."""
    lists: list[MailboxList] = []
    for line in _lines(data):
        if line.startswith(b" "):
            fields = line.split()
            if len(fields) < 3:
                raise ConfigError(f"not an mpop UIDL file: a list begins with {line[:80]!r}")
            lists.append(MailboxList(_text(fields[1]), _text(b" ".join(fields[2:])), []))
        elif not lists:
            raise ConfigError("not an mpop UIDL file: a uid before any ' <count> <host> "
                              "<user>' line")
        else:
            lists[-1].entries.append(Collected(uid_key(line)))
    return lists


def read_fetchmail(data: bytes) -> list[MailboxList]:
    """A fetchmail ``.fetchids`` file (its mailboxes in order of first appearance)."""
    lists: dict[tuple[str, str], MailboxList] = {}
    for line in _lines(data):
        where, _, uid = line.partition(b" ")
        user, at, host = where.rpartition(b"@")
        if not (at and uid.strip()):
            raise ConfigError(f"not a fetchmail .fetchids file: line {line[:80]!r}")
        mailbox = (_text(host), _text(user))
        lists.setdefault(mailbox, MailboxList(*mailbox, [])).entries.append(
            Collected(uid_key(uid.strip()))
        )
    return list(lists.values())


def read_thunderbird(data: bytes) -> list[MailboxList]:
    """A Thunderbird ``popstate.dat`` (its mailboxes in order)."""
    lists: list[MailboxList] = []
    for line in _lines(data):
        if line.startswith(b"*"):
            host, _, user = line[1:].strip().partition(b" ")
            lists.append(MailboxList(_text(host), _text(user.strip()), []))
            continue
        fields = line.split()
        if not lists or len(fields) not in (2, 3):
            raise ConfigError(f"not a Thunderbird popstate.dat: line {line[:80]!r}")
        if fields[0] in _THUNDERBIRD_COLLECTED:
            seconds = _time(fields[2]) if len(fields) == 3 else None
            lists[-1].entries.append(Collected(uid_key(fields[1]), seconds))
    return lists


#: the clients ``popkeep import-state`` reads, by the name the user gives
READERS: dict[str, Callable[[bytes], list[MailboxList]]] = {
    "getmail6": read_getmail,
    "mpop": read_mpop,
    "fetchmail": read_fetchmail,
    "thunderbird": read_thunderbird,
}


def entries_of(lists: list[MailboxList], host: str, user: str) -> list[Collected]:
    """The entries of the mailbox ``user`` at ``host`` (host names compare without
    case; a list that does not name its mailbox belongs to whoever asks).

    Raises ConfigError naming the mailboxes the file holds when none is that one:
    taking another mailbox's unique-ids would leave its namesakes uncollected."""
    matching = [
        mailbox for mailbox in lists
        if mailbox.host is None or (mailbox.host.lower() == host.lower() and mailbox.user == user)
    ]
    if not matching:
        held = ", ".join(f"{m.user} at {m.host}" for m in lists) or "none"
        raise ConfigError(
            f"the file holds no list for {user} at {host} (it holds: {held}); "
            "name the one to take with --host and --user"
        )
    return [entry for mailbox in matching for entry in mailbox.entries]

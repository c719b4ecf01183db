"""A UIDL is a hint, not an identity (issue 16 item 2): a server that hands the UIDL
of a message popkeep collected to a new message (RFC 1939 §7 allows it once the old
one is gone) gets the new message fetched and delivered, never skipped on the old
message's record and never deleted unread; the run says so, and the old record is
kept under a retired key (docs/guarantees.md, "sources: POP3")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from popkeep.testing.mailgen import same_size_stranger
from popkeep.testing.misbehaviour import Misbehaviour

from .conftest import Case, digest, small_mailbox

Hostile = Callable[..., Case]


def _reused(case: Case, uid: str, new: bytes) -> None:
    """Every copy in the Maildir once, the new message's among them; its uid's old
    record retired, and the run reported it on stderr (no server text in it)."""
    stored = case.stored()
    assert stored[digest(new)] == 1, "the new message under the reused UIDL was not delivered"
    assert all(n == 1 for n in stored.values()), "a message stored twice"
    retired = case.query("SELECT uid FROM messages WHERE uid LIKE '% retired %'")
    assert [key.split(" retired ")[0] for key in retired] == [uid]


def _warned(err: list[str]) -> None:
    assert any("reused" in line and "isp" in line for line in err), err


def test_keep_mode_fetches_a_new_message_under_the_uidl_of_one_deleted_elsewhere(
    hostile: Hostile,
) -> None:
    case = hostile()
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[1]
    box.remove(uid)  # another device deleted it
    assert case.fetch()[0] == 0  # popkeep sees it GONE
    new = b"From: a@example.com\r\nSubject: brand new\r\nMessage-ID: <new@x>\r\n\r\nhello\r\n"
    box.reuse_uid(uid, new)
    code, err = case.fetch()
    assert code == 0, err
    _reused(case, uid, new)
    _warned(err)
    assert case.fetch()[0] == 0 and case.stored()[digest(new)] == 1  # settled: not again


def test_delete_now_fetches_before_deleting_a_new_message_under_a_uidl_it_deleted(
    hostile: Hostile,
) -> None:
    case = hostile()
    case.configure(delete_after="0s")
    box = case.server.mailbox
    first = list(box.uids)
    assert case.fetch()[0] == 0
    assert box.deleted == first
    new = b"From: a@example.com\r\nSubject: after\r\nMessage-ID: <after@x>\r\n\r\nhello\r\n"
    box.reuse_uid(first[0], new)
    code, err = case.fetch()
    assert code == 0, err
    _reused(case, first[0], new)
    _warned(err)
    assert box.deleted == [*first, first[0]]  # deleted only once stored


@pytest.mark.parametrize("same_size", [False, True], ids=["other-size", "same-size"])
def test_delete_after_never_deletes_unread_a_new_message_under_a_collected_uidl(
    hostile: Hostile, same_size: bool
) -> None:
    """Collected in keep mode; meanwhile the old message was deleted elsewhere and its
    UIDL given to new mail, before popkeep saw it go. Then the message is due for
    deletion: TOP n 0 shows it is another message (its size may be the old one's).
    It is fetched and stored before anything is deleted."""
    case = hostile(small_mailbox(4))
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[2]
    old = box.message(uid)
    new = same_size_stranger(old)
    if not same_size:
        new = new.replace(b"\r\n\r\n", b"\r\nX-Spam: no\r\n\r\n", 1)
    box.reuse_uid(uid, new)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    _reused(case, uid, new)
    _warned(err)
    assert digest(new) in case.stored()
    assert uid in box.deleted and uid not in box.uids  # deleted, after it was stored


def test_messages_that_are_what_they_were_are_deleted_without_fuss(hostile: Hostile) -> None:
    case = hostile(small_mailbox(4))
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert not err
    assert len(box) == 0 and len(case.stored()) == 4
    assert not case.query("SELECT uid FROM messages WHERE uid LIKE '% retired %'")
    tops = [line for s in case.server.sessions for line in s.lines if line.startswith(b"TOP")]
    assert len(tops) == 4  # sizes equal: the digest decided, once per message


def test_a_message_that_comes_back_unchanged_is_not_stored_twice(hostile: Hostile) -> None:
    """A uid seen gone that comes back with the same bytes (a server that hid it for a
    while) is fetched again as new, and its content is recognised: adopted, not
    delivered a second time."""
    case = hostile()
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[0]
    same = box.message(uid)
    box.remove(uid)
    assert case.fetch()[0] == 0
    box.reuse_uid(uid, same)
    code, err = case.fetch()
    assert code == 0, err
    assert all(n == 1 for n in case.stored().values()) and len(case.stored()) == 5
    state = case.query(f"SELECT state FROM messages WHERE uid = '{uid}'")
    assert state == ["delivered"]


def test_a_message_the_server_added_a_status_field_to_is_still_the_same(
    hostile: Hostile,
) -> None:
    """Servers on mbox files add fields they maintain (``Status: RO``) to a message
    once served, so its LIST size grows: the header digest leaves such fields out,
    and the message is deleted as collected, not fetched and stored a second time."""
    case = hostile(small_mailbox(3))
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[1]
    marked = box.message(uid).replace(b"\r\n\r\n", b"\r\nStatus: RO\r\n\r\n", 1)
    box.reuse_uid(uid, marked)  # the same message, rewritten in place by the server
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert not err and len(box) == 0
    assert len(case.stored()) == 3 and all(n == 1 for n in case.stored().values())
    assert not case.query("SELECT uid FROM messages WHERE uid LIKE '% retired %'")


def test_without_top_the_listed_size_tells_a_new_message_apart(hostile: Hostile) -> None:
    """A server without TOP (RFC 1939 §7: optional): the LIST size recorded at
    collection against LIST now; no TOP is sent."""
    case = hostile(small_mailbox(3), no_top=True)
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[0]
    new = same_size_stranger(box.message(uid)).replace(b"\r\n\r\n", b"\r\nX: 1\r\n\r\n", 1)
    box.reuse_uid(uid, new)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    _reused(case, uid, new)
    assert len(box) == 0
    assert not [line for s in case.server.sessions for line in s.lines if line.startswith(b"TOP")]


def _lines(case: Case, verb: bytes, session: int = -1) -> list[bytes]:
    return [line for line in case.server.sessions[session].lines if line.startswith(verb)]


def test_keep_mode_tells_a_new_message_under_a_uidl_reused_between_polls_by_stat(
    hostile: Hostile,
) -> None:
    """Keep mode, the old message deleted elsewhere and its UIDL given to new mail of
    another size before popkeep saw it go: STAT's octets no longer add up, so the
    poll LISTs, TOPs the message whose size moved, and fetches it."""
    case = hostile(small_mailbox(4))
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[1]
    new = same_size_stranger(box.message(uid)).replace(b"\r\n\r\n", b"\r\nX: 1\r\n\r\n", 1)
    box.reuse_uid(uid, new)
    code, err = case.fetch()
    assert code == 0, err
    _reused(case, uid, new)
    _warned(err)
    assert len(box) == 4  # keep mode: nothing deleted


def test_keep_mode_learns_the_size_a_server_gave_a_message_it_marked(hostile: Hostile) -> None:
    """A server adding ``Status: RO`` to a message it served: the poll after sees the
    octets move, TOP shows the same header, the new size is recorded; nothing is
    fetched again, and the poll after that sends no LIST and no TOP."""
    case = hostile(small_mailbox(3))
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[0]
    box.reuse_uid(uid, box.message(uid).replace(b"\r\n\r\n", b"\r\nStatus: RO\r\n\r\n", 1))
    code, err = case.fetch()
    assert (code, err) == (0, [])
    assert len(_lines(case, b"TOP")) == 1 and len(case.stored()) == 3
    code, err = case.fetch()
    assert (code, err) == (0, [])
    assert not _lines(case, b"TOP") and not _lines(case, b"LIST")
    assert not case.query("SELECT uid FROM messages WHERE uid LIKE '% retired %'")


def test_a_reused_uidl_in_an_incomplete_listing_is_still_fetched(hostile: Hostile) -> None:
    """A listing with an entry left out (message 3 listed twice) as long as the live
    set, one of its uids a reused one: the uid count alone would say "nothing
    changed", and the new message under the reused UIDL would wait for a complete
    listing that a broken server may never send. It is fetched now; the message left
    out is neither gone nor touched."""
    case = hostile()
    case.configure()
    box = case.server.mailbox
    assert case.fetch()[0] == 0
    uid = box.uids[1]
    box.remove(uid)
    assert case.fetch()[0] == 0  # gone
    new = b"From: a@example.com\r\nSubject: reused\r\nMessage-ID: <reused@x>\r\n\r\nhi\r\n"
    box.reuse_uid(uid, new)
    case.server.misbehave = Misbehaviour(extra_uidl_lines=(b"3 again",))
    code, err = case.fetch()
    assert code == 0, err
    _reused(case, uid, new)
    _warned(err)
    third = box.uids[2]
    assert case.query(f"SELECT state FROM messages WHERE uid = '{third}'") == ["delivered"]

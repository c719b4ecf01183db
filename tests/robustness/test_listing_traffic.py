"""What a poll asks the server: the scan listing (LIST) only for messages it will fetch.

A poll of a large mailbox with nothing new is dominated by the listings; popkeep
sends UIDL, and LIST only for the sizes of new messages (one ``LIST n`` each
when they are few, one whole LIST when they are many).
"""

from __future__ import annotations

from collections.abc import Callable

from popkeep.testing.mailgen import realistic_mailbox

from .conftest import Case, digest, small_mailbox


def _commands(case: Case, session: int) -> list[bytes]:
    assert case.server.wait_for_sessions(session)
    return [line.split(b" ")[0].upper() + (b" n" if b" " in line else b"")
            for line in case.server.sessions[session - 1].lines]


def test_no_list_when_nothing_is_new_and_list_n_for_a_new_message(
    hostile: Callable[..., Case],
) -> None:
    case = hostile(small_mailbox(40))
    case.configure()
    code, err = case.fetch()
    assert code == 0, err
    first = _commands(case, 1)
    assert first.count(b"LIST") == 1 and b"LIST n" not in first  # 40 new of 40: one LIST

    code, err = case.fetch()
    assert code == 0, err
    second = _commands(case, 2)
    assert b"UIDL" in second
    assert not [c for c in second if c.startswith(b"LIST")]

    case.server.mailbox.add(next(iter(realistic_mailbox(1, seed=99))))
    case.by_uid = Case(case.server, case.base, case.capsys).by_uid  # digests incl. the new one
    code, err = case.fetch()
    assert code == 0, err
    third = _commands(case, 3)
    assert third.count(b"LIST n") == 1 and b"LIST" not in third
    assert third.count(b"RETR n") == 1
    assert len(case.stored()) == 41
    case.assert_safe()


def test_one_gone_and_one_new_in_the_same_poll_is_not_mistaken_for_nothing_new(
    hostile: Callable[..., Case],
) -> None:
    """Same number of messages listed as known alive, but not the same ones: the new
    one is fetched and the vanished one counted gone (a poll that compared counts
    only would see nothing to do)."""
    case = hostile(small_mailbox(6))
    case.configure()
    code, err = case.fetch()
    assert code == 0, err
    assert len(case.stored()) == 6

    gone = case.server.mailbox.uids[2]
    assert case.server.mailbox.remove(gone)
    new_uid = case.server.mailbox.add(next(iter(realistic_mailbox(1, seed=77))))
    case.by_uid = {**case.by_uid, new_uid: digest(case.server.mailbox.message(new_uid))}
    code, err = case.fetch()
    assert code == 0, err
    assert case.by_uid[new_uid] in case.stored() and len(case.stored()) == 7
    assert case.query("SELECT uid FROM messages WHERE state = 'gone'") == [gone]
    assert _commands(case, 2).count(b"RETR n") == 1
    case.assert_safe()

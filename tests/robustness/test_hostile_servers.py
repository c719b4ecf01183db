"""Misbehaving POP3 servers against the real CLI (in-process).

Each failure case asserts: a non-zero exit, one line on stderr naming the
account and the reason, no partial or duplicate file in the Maildir, nothing
deleted on the server that is not stored, no receipt pointing at a missing
file, no DELE left pending; then the server is fixed and a normal run resumes.
Cases a correct client must simply tolerate (lying sizes, bare LF, stuffing,
changing UIDLs, injected plaintext) must succeed byte-for-byte.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from popkeep.cli import main
from popkeep.pop3.listing import ODD_UID_PREFIX
from popkeep.testing import misbehaviour as mb
from popkeep.testing.mailbox import Mailbox
from popkeep.testing.misbehaviour import Misbehaviour

from .conftest import PASSWORD, Case, digest, small_mailbox

Hostile = Callable[..., Case]


# -- connection cut at the worst moments ------------------------------------------------


def test_drop_in_the_middle_of_retr(hostile: Hostile) -> None:
    case = hostile(drop_in_retr=(3, 700))
    case.configure(delete_after="0s")
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "closed")
    assert code == 75
    assert len(case.stored()) == 2  # messages 1 and 2 were complete: kept, not redone
    assert case.server.mailbox.deleted == []  # a failed run deletes nothing
    case.resume()
    assert len(case.stored()) == 5 and len(case.server.mailbox) == 0


def test_drop_after_dele_deletes_nothing(hostile: Hostile) -> None:
    case = hostile(drop_after_dele=True)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err)
    assert code == 75
    assert len(case.stored()) == 5 and len(case.server.mailbox) == 5
    assert case.query("SELECT count(*) FROM messages WHERE state = 'deleted'") == [0]
    case.resume()
    assert len(case.server.mailbox) == 0 and len(case.stored()) == 5


def test_drop_before_the_quit_reply_counts_nothing_as_deleted(hostile: Hostile) -> None:
    case = hostile(drop_before_quit_reply=True)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "QUIT")
    assert code == 75
    assert len(case.server.mailbox) == 5  # no UPDATE state without QUIT +OK (RFC 1939 §6)
    assert case.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [5]
    case.resume()  # delivers nothing again, deletes all five
    assert len(case.server.mailbox) == 0
    assert case.query("SELECT delivered FROM runs ORDER BY id") == [5, 0]


def test_refused_dele_is_not_counted_and_the_rest_are_deleted(hostile: Hostile) -> None:
    # "-ERR message expunged": another client (or the server finishing a killed
    # session of ours) removed it between our UIDL and DELE. Not a failure.
    case = hostile(refuse_dele=frozenset({2}))
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert len(case.stored()) == 5
    assert len(case.server.mailbox) == 1  # message 2 stays: its DELE was refused
    assert case.query("SELECT count(*) FROM messages WHERE state = 'deleted'") == [4]
    assert case.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [1]


# -- framing ----------------------------------------------------------------------------


def test_lying_list_sizes_are_tolerated(hostile: Hostile) -> None:
    for delta in (-200, 100_000):
        case = hostile(list_size_delta=delta)
        case.configure()
        code, err = case.fetch()
        assert code == 0, err
        assert set(case.stored()) == set(case.by_uid.values())  # the bytes, not the sizes


def test_bare_lf_line_endings(hostile: Hostile) -> None:
    case = hostile(bare_lf=True)
    case.configure()
    code, err = case.fetch()
    assert code == 0, err
    assert set(case.stored()) == set(case.by_uid.values())


STUFFED = (
    b".starts with a dot\r\n"
    b"Subject: dots\r\n\r\n"
    b".\r\n"
    b"..two dots\r\n"
    b"body with CRLF.CRLF inside:\r\n.\r\nafter it\r\n"
    b". dot space\r\n"
    b"last line without a newline."
)


def test_leading_dots_and_crlf_dot_crlf_in_the_body(hostile: Hostile) -> None:
    case = hostile(Mailbox([("stuffed", STUFFED)]))
    case.configure()
    code, err = case.fetch()
    assert code == 0, err
    (path,) = case.files()
    # RFC 1939 §3: unstuffed exactly; the server added the final CRLF the message lacked.
    assert path.read_bytes() == (STUFFED + b"\r\n").replace(b"\r\n", b"\n")


def test_ten_megabyte_line_is_stored_intact(hostile: Hostile) -> None:
    # Policy (docs/guarantees.md): a line of any length is data; memory holds at most
    # 1 MB of it. Before, the run failed at that message, every run.
    long_line = b"Subject: one long line\r\n\r\n." + b"A" * (10 << 20) + b"\r\nend\r\n"
    box = small_mailbox(4)
    box.add(long_line, "long-line")
    box.add(b"Subject: after it\r\n\r\nstill arrives\r\n", "after")
    case = hostile(box)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert case.stored() == Counter(case.by_uid.values())
    assert len(case.server.mailbox) == 0


def test_message_that_never_ends_is_cut_then_skipped_and_the_rest_arrive(
    hostile: Hostile,
) -> None:
    # Issue 16 item 3. Before: every run failed at message 2; 3, 4 and 5 never arrived.
    case = hostile(endless_retr=2)
    case.configure(delete_after="0s", extra='max_message_size = "2MB"\ntimeout = "5s"')
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "larger than 2000000 octets")
    assert not list((case.maildir / "tmp").iterdir())
    uid2 = case.server.mailbox.uids[1]
    code, err = case.fetch()  # the server still misbehaves
    assert code == 0, err
    case.assert_safe()
    assert len(case.stored()) == 4 and case.server.mailbox.uids == [uid2]
    assert case.by_uid[uid2] not in case.stored()  # nothing partial
    (warning,) = [line for line in err if uid2 in line]
    assert "never ends" in warning and "popkeep retry isp" in warning
    assert case.query("SELECT skipped FROM runs ORDER BY id") == [1, 1]
    case.capsys.readouterr()
    assert main(["-c", str(case.config), "status"]) == 0
    shown = [line for line in case.capsys.readouterr().out.splitlines() if uid2 in line]
    assert len(shown) == 1 and "skipped, left on the server" in shown[0], shown
    assert main(["-c", str(case.config), "status", "--json"]) == 0
    (row,) = json.loads(case.capsys.readouterr().out)["accounts"]
    assert [s["uid"] for s in row["skipped"]] == [uid2]
    case.server.misbehave = mb.Misbehaviour()  # fixed; the user asks for another try
    assert main(["-c", str(case.config), "retry", "isp"]) == 0
    code, err = case.fetch()
    assert code == 0, err
    assert len(case.stored()) == 5 and len(case.server.mailbox) == 0


def test_message_that_never_ends_is_cut_by_the_session_timeout(hostile: Hostile) -> None:
    case = hostile(endless_retr=1, trickle_delay=0.01)
    case.configure(extra='session_timeout = "2s"')
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "session longer than")
    case.resume()


# -- unique-ids ---------------------------------------------------------------------------


def test_two_messages_under_one_uidl_are_both_delivered_and_deleted(hostile: Hostile) -> None:
    """RFC 1939 §7 forbids two messages with one unique-id; a server that does it gets
    both collected (told apart by TOP n 0 and LIST size), each deleted as itself."""
    case = hostile(duplicate_uidl=True)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert not err, err  # nothing skipped, nothing to warn about
    case.assert_safe()
    assert len(case.stored()) == 5
    assert len(case.server.mailbox) == 0
    shared = case.query("SELECT uid FROM messages WHERE uid LIKE 'duplicated-uid %'")
    assert len(shared) == 2 and all(" header-sha256 " in key for key in shared)


def test_two_messages_under_one_uidl_are_kept_and_never_delivered_twice(
    hostile: Hostile,
) -> None:
    case = hostile(duplicate_uidl=True)
    case.configure(delete_after="never")
    assert case.fetch() == (0, [])
    assert len(case.stored()) == 5
    served = len(case.server.sessions[-1].retrieved)
    code, err = case.fetch()
    assert (code, err) == (0, [])
    assert not case.server.sessions[-1].retrieved  # recognised: nothing fetched again
    case.server.misbehave = Misbehaviour()  # the server lists each uid once again
    assert case.fetch() == (0, [])
    case.assert_safe()
    assert len(case.stored()) == 5  # fetched again under their own uids, not delivered
    assert served == 5


def test_a_server_that_starts_sharing_a_uidl_delivers_nothing_twice(hostile: Hostile) -> None:
    """Messages collected under their own uids, later listed under one: fetched
    again under their new keys and adopted by their content, never delivered twice;
    then deleted as themselves."""
    case = hostile()
    case.configure(delete_after="never")
    assert case.fetch() == (0, [])
    case.server.misbehave = Misbehaviour(duplicate_uidl=True)
    assert case.fetch() == (0, [])
    case.assert_safe()
    assert len(case.stored()) == 5
    assert case.query("SELECT sum(adopted) FROM runs") == [2]
    case.configure(delete_after="0s")
    assert case.fetch() == (0, [])
    case.assert_safe()
    assert len(case.server.mailbox) == 0 and len(case.stored()) == 5


def test_two_alike_messages_under_one_uidl_are_both_delivered(hostile: Hostile) -> None:
    """Same header, same size, another body: the header digest and size cannot tell
    them apart, the occurrence in the listing does (docs/guarantees.md)."""
    head = b"From: a@example.com\r\nSubject: twins\r\nMessage-ID: <twin@x>\r\n\r\n"
    box = small_mailbox()
    twins = Mailbox.from_messages([head + b"body A\r\n", head + b"body B\r\n",
                                   *(box.message(uid) for uid in box.uids)])
    case = hostile(twins, duplicate_uidl=True)
    case.configure(delete_after="never")
    assert case.fetch() == (0, [])
    assert case.fetch() == (0, [])
    case.assert_safe()
    assert len(case.stored()) == 7
    keys = sorted(case.query("SELECT uid FROM messages WHERE uid LIKE 'duplicated-uid %'"))
    assert keys[1] == keys[0] + " #2"


def test_two_messages_under_one_uidl_without_top_are_left_alone(hostile: Hostile) -> None:
    case = hostile(duplicate_uidl=True, no_top=True)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert any("isp" in line and "2 entries" in line for line in err), err
    case.assert_safe()
    assert len(case.stored()) == 3  # messages 3..5; 1 and 2 are neither fetched nor deleted
    assert len(case.server.mailbox) == 2
    case.resume()


def test_uidls_that_change_every_session_are_adopted_not_redelivered(hostile: Hostile) -> None:
    case = hostile(changing_uidl=True)
    case.configure(delete_after="never")
    assert case.fetch()[0] == 0
    first = dict(zip(case.query("SELECT sha256 FROM messages"),
                     case.query("SELECT first_retrieved_at FROM messages"), strict=True))
    for _ in range(2):
        code, err = case.fetch()
        assert code == 0, err
    case.assert_safe()
    assert len(case.stored()) == 5
    rows = case.query("SELECT sha256 || ' ' || first_retrieved_at FROM messages")
    assert len(rows) == 15  # three sessions, three sets of uids
    for row in rows:
        sha, when = row.split(" ", 1)
        assert first[sha] == when  # adopted rows keep the original first_retrieved_at
    assert case.query("SELECT sum(adopted) FROM runs") == [10]


def test_without_uidl_delete_now_collects_everything_once(hostile: Hostile) -> None:
    """UIDL is optional (RFC 1939 §7): collecting and deleting in one session needs
    no key that lasts; a session whose deletions did not take effect is followed by
    one that fetches again and adopts, never delivering twice."""
    case = hostile(no_uidl=True, drop_before_quit_reply=True)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code != 0 and len(case.server.mailbox) == 5  # QUIT unanswered: nothing deleted
    case.assert_safe()
    assert len(case.stored()) == 5
    case.server.misbehave = Misbehaviour(no_uidl=True)
    code, err = case.fetch()
    assert code == 0, err
    case.assert_safe()
    assert len(case.stored()) == 5 and len(case.server.mailbox) == 0
    assert case.query("SELECT sum(adopted) FROM runs") == [5]


def test_without_uidl_keep_mode_recognises_messages_by_their_header(hostile: Hostile) -> None:
    case = hostile(no_uidl=True)
    case.configure(delete_after="never")
    assert case.fetch() == (0, [])
    assert len(case.stored()) == 5
    assert case.fetch() == (0, [])
    assert not case.server.sessions[-1].retrieved  # TOP told them; nothing fetched again
    new = b"From: a@example.com\r\nSubject: later\r\nMessage-ID: <later@x>\r\n\r\nhi\r\n"
    box = case.server.mailbox
    box.add(new)
    case.by_uid = {uid: digest(box.message(uid)) for uid in box.uids}
    assert case.fetch() == (0, [])
    assert case.server.sessions[-1].retrieved == [case.server.mailbox.uids[-1]]
    case.assert_safe()
    assert len(case.stored()) == 6 and len(case.server.mailbox) == 6
    keys = case.query("SELECT uid FROM messages")
    assert all(key.startswith("header-sha256 ") for key in keys), keys


def test_without_uidl_two_alike_messages_are_both_kept_once(hostile: Hostile) -> None:
    """Same header and size, another body: the occurrence in the listing tells them apart."""
    head = b"From: a@example.com\r\nSubject: twins\r\nMessage-ID: <twin@x>\r\n\r\n"
    case = hostile(Mailbox.from_messages([head + b"body A\r\n", head + b"body B\r\n"]),
                   no_uidl=True)
    case.configure(delete_after="never")
    assert case.fetch() == (0, [])
    assert case.fetch() == (0, [])
    case.assert_safe()
    assert len(case.stored()) == 2
    keys = sorted(case.query("SELECT uid FROM messages"))
    assert keys[1] == keys[0] + " #2"


def test_without_uidl_a_twin_replacing_a_collected_message_is_not_deleted_unread(
    hostile: Hostile,
) -> None:
    """A header key names the header and size, not the body: before it is deleted, a
    message under one is retrieved and its content compared with what was collected."""
    head = b"From: a@example.com\r\nSubject: twins\r\nMessage-ID: <twin@x>\r\n\r\n"
    case = hostile(Mailbox.from_messages([head + b"body A\r\n"]), no_uidl=True)
    case.configure(delete_after="1d")
    assert case.fetch() == (0, [])
    box = case.server.mailbox
    box.remove(box.uids[0])  # deleted elsewhere, and before the next poll …
    twin = box.add(head + b"body C\r\n")  # … a message with the same header and size
    case.by_uid[twin] = digest(box.message(twin))
    with sqlite3.connect(case.base / "state.db") as db:  # a day later: due
        db.execute("UPDATE messages SET first_retrieved_at = '2000-01-01T00:00:00+00:00'")
    code, err = case.fetch()
    assert code == 0, err
    case.assert_safe()  # the twin is not deleted on the server unless stored
    assert twin in case.server.sessions[-1].retrieved
    assert digest(box.message(twin)) in case.stored()


def test_without_uidl_a_due_deletion_retrieves_each_message_once_more(hostile: Hostile) -> None:
    """The content check's cost (docs/guarantees.md, servers without UIDL): a
    message under a header key is retrieved once more in the poll that deletes it,
    and in no other poll after the one that collected it."""
    case = hostile(no_uidl=True)
    case.configure(delete_after="1d")
    assert case.fetch() == (0, [])
    uids = case.server.mailbox.uids
    assert case.fetch() == (0, [])
    assert case.server.sessions[-1].retrieved == []  # nothing due: nothing retrieved
    with sqlite3.connect(case.base / "state.db") as db:  # a day later: due
        db.execute("UPDATE messages SET first_retrieved_at = '2000-01-01T00:00:00+00:00'")
    assert case.fetch() == (0, [])
    assert sorted(case.server.sessions[-1].retrieved) == sorted(uids)
    assert len(case.server.mailbox) == 0
    case.assert_safe()


def test_without_uidl_or_top_keep_mode_is_refused_in_one_line(hostile: Hostile) -> None:
    case = hostile(no_uidl=True, no_top=True)
    case.configure(delete_after="14d")
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "neither UIDL nor TOP", 'delete_after = "0s"')
    assert code == 77  # permanent: retrying will not help
    assert case.stored() == {}
    assert not case.server.sessions[-1].retrieved


def test_uidls_with_slashes_and_dots_never_become_paths(hostile: Hostile) -> None:
    case = hostile(weird_uidls=(b"../../etc/passwd", b"a/b", b"..", b"."))
    case.configure()
    code, err = case.fetch()
    assert code == 0, err
    assert len(case.stored()) == 5
    for path in case.files():
        assert path.parent.parent == case.maildir
        assert "passwd" not in path.name and ".." not in path.name and "a/b" not in str(path)
    assert set(case.query("SELECT uid FROM messages")) >= {"../../etc/passwd", "a/b", ".."}
    assert not (case.base / "etc").exists()


ODD_UIDLS = (b"x" * 75, "ünï-cödé".encode(), b"a b", b"$(touch pwned);|`id`", b"C:\\x\\..")


def test_odd_uidls_are_data_fetched_stored_and_keyed_stably(hostile: Hostile) -> None:
    case = hostile(weird_uidls=ODD_UIDLS)
    case.configure(delete_after="never")
    code, err = case.fetch()
    assert code == 0, err
    assert len(case.stored()) == 5  # none refused, the mailbox not refused
    keys = case.query("SELECT uid FROM messages")
    odd = [k for k in keys if k.startswith(ODD_UID_PREFIX)]
    assert len(odd) == 4 and all(k.isprintable() and k.isascii() for k in keys)
    for _ in range(2):  # the same octets give the same keys: nothing fetched again
        code, err = case.fetch()
        assert code == 0, err
    assert sorted(case.query("SELECT uid FROM messages")) == sorted(keys)
    assert case.query("SELECT sum(delivered) FROM runs") == [5]
    assert not (case.base / "pwned").exists() and not (case.base / "x").exists()
    case.assert_safe()


def test_malformed_listing_lines_are_skipped_and_reported(hostile: Hostile) -> None:
    # UIDL lines 2 and 5 do not parse (3 and 4 do, with odd unique-ids); every
    # ``LIST n`` reply is garbage: no message has a size it can be fetched by.
    case = hostile(malformed_listings=True)
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    warnings = [line for line in err if "warning" in line]
    assert len(warnings) == 2 and all("account isp" in w and w.isprintable() for w in warnings)
    assert " 2 entries" in warnings[0] and " 3 message(s)" in warnings[1]
    case.assert_safe()
    assert case.stored() == {} and case.server.mailbox.deleted == []
    case.resume()


@pytest.mark.parametrize(
    ("mis", "skipped", "untouched"),
    [
        ({"extra_uidl_lines": (b"9 ghost",)}, 1, None),  # a number beyond STAT's count
        ({"extra_uidl_lines": (b"3 again",)}, 2, 3),  # message 3 listed twice: both lines
        ({"extra_uidl_lines": (b"junk", b"4", b"0 zero")}, 3, None),  # unparsable lines
        ({"list_omits": frozenset({2})}, 1, 2),  # in UIDL, not in LIST
    ],
    ids=["beyond-stat", "number-twice", "unparsable", "not-in-list"],
)
def test_inconsistent_listing_entries_are_never_retrieved_or_deleted(
    hostile: Hostile, mis: dict[str, Any], skipped: int, untouched: int | None
) -> None:
    case = hostile(**mis)
    uids = case.server.mailbox.uids
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    (warning,) = [line for line in err if "warning" in line]
    assert "account isp" in warning and f" {skipped} " in warning, warning
    (session,) = case.server.sessions
    sent = {line for line in session.lines if line[:4] in (b"RETR", b"DELE")}
    if untouched is None:
        assert not case.server.mailbox.uids
    else:
        assert case.server.mailbox.uids == [uids[untouched - 1]]
        assert not sent & {b"RETR %d" % untouched, b"DELE %d" % untouched}
    assert all(int(line.split()[1]) <= 5 for line in sent)
    case.assert_safe()
    case.resume()


def test_a_known_message_missing_from_an_inconsistent_listing_is_not_gone(
    hostile: Hostile,
) -> None:
    case = hostile()
    case.configure(delete_after="never")
    assert case.fetch()[0] == 0
    case.server.misbehave = mb.Misbehaviour(extra_uidl_lines=(b"3 again",))
    code, err = case.fetch()
    assert code == 0, err
    # message 3 is not in this listing, but the listing is incomplete: not "gone"
    assert case.query("SELECT count(*) FROM messages WHERE state = 'gone'") == [0]
    assert case.query("SELECT count(*) FROM messages WHERE state = 'delivered'") == [5]


# -- response codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "word"),
    [
        (mb.IN_USE, 75, "IN-USE"),
        (mb.LOGIN_DELAY, 75, "LOGIN-DELAY"),
        (mb.SYS_TEMP, 75, "SYS/TEMP"),
        (mb.AUTH_FAILED, 77, "AUTH"),
        (mb.SYS_PERM, 77, "SYS/PERM"),
    ],
    ids=["in-use", "login-delay", "sys-temp", "auth", "sys-perm"],
)
def test_response_codes_map_to_retry_or_fix(
    hostile: Hostile, text: bytes, code: int, word: str
) -> None:
    case = hostile(auth_error=text)
    case.configure()
    got, err = case.fetch()
    case.assert_failed_cleanly(got, err, word)
    assert got == code
    hint = "later" if code == 75 else ("password" if word == "AUTH" else "cannot")
    assert hint in err[0]
    case.resume()


# -- TLS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"stls_refused": True}, {"stls": False}],
                         ids=["refused", "not-advertised"])
def test_tls_required_but_unavailable_never_sends_the_password(
    hostile: Hostile, options: dict[str, Any]
) -> None:
    case = hostile(**options)
    case.configure(tls="starttls")
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "STLS")
    assert code == 77
    assert not case.server.received_password(PASSWORD)


def test_plaintext_injected_after_stls_ok_is_discarded(hostile: Hostile) -> None:
    case = hostile(stls_inject=True)
    case.configure(tls="starttls")
    code, err = case.fetch()
    assert code == 0, err
    assert len(case.stored()) == 5
    assert case.server.received_password(PASSWORD)
    assert not case.server.received_password(PASSWORD, plaintext_only=True)


# -- slow, silent and foreign servers ---------------------------------------------------------


def test_one_byte_per_second_hits_the_session_bound(hostile: Hostile) -> None:
    case = hostile(trickle_delay=1.0)
    case.configure(extra='timeout = "2s"\nsession_timeout = "3s"')
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "session longer than")
    assert code == 75
    case.resume()


def test_server_that_accepts_and_never_speaks(hostile: Hostile) -> None:
    case = hostile(silent=True)
    case.configure(extra='timeout = "1s"')
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "no POP3 greeting within 1 s (nothing arrived)")
    assert code == 75
    assert not case.server.received_password(PASSWORD)
    case.resume()


def test_non_pop3_greeting(hostile: Hostile) -> None:
    case = hostile(greeting=b"220 smtp.example.com ESMTP ready")
    case.configure()
    code, err = case.fetch()
    case.assert_failed_cleanly(code, err, "220 smtp")
    assert not case.server.received_password(PASSWORD)
    case.resume()


# -- messages malformed as mail ---------------------------------------------------------------


MALFORMED = [
    b"Subject: nul\r\n\r\nbinary \x00 zero \x00\x00 bytes\r\n",
    b"Subject: \xff\xfe garbage \x80\x81\r\nFrom: \xe3\x81\x82 <x@\xff>\r\n\r\n8-bit \xa4\xa2\r\n",
    b"no headers at all, no blank line, no From, no Date, no Message-ID\r\n",
    b"".join(b"X-Header-%05d: value\r\n" % i for i in range(5000)) + b"\r\nthousands\r\n",
    b"Content-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n--never-closed\r\n"
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!not base64!!\r\n",
    b"\r\n",
    b"From: lone\rCR and lone\nLF mixed\r\n\r\nbody\r\n",
]


def test_malformed_messages_are_stored_byte_for_byte(hostile: Hostile) -> None:
    case = hostile(Mailbox.from_messages(MALFORMED))
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    assert sorted(case.stored()) == sorted(digest(m) for m in MALFORMED)
    assert len(case.server.mailbox) == 0


def test_an_entry_left_out_of_a_long_listing_leaves_the_last_message_collected(
    hostile: Hostile,
) -> None:
    """Enough messages that their sizes come from one full LIST: the entry left out
    (message 3 listed twice in UIDL) must not make the listing one message shorter at
    its end, where the last message would wait, never fetched, for a consistent UIDL."""
    case = hostile(small_mailbox(40), extra_uidl_lines=(b"3 again",))
    uids = case.server.mailbox.uids
    case.configure(delete_after="0s")
    code, err = case.fetch()
    assert code == 0, err
    (session,) = case.server.sessions
    assert b"LIST" in session.lines  # the full listing, not LIST n for each
    assert case.server.mailbox.uids == [uids[2]]
    case.assert_safe()
    assert len(case.stored()) == 39

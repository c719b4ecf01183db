"""Contract suite for every StateStore implementation (today: SQLite).

A new store (PostgreSQL …) adds a factory to ``STORE_FACTORIES``; every test
below then runs against it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from popkeep.clock import FakeClock
from popkeep.errors import StateError
from popkeep.model import MessageState, Receipt, RunSummary
from popkeep.state.base import (
    ALERTS_KEPT,
    RUNS_KEPT,
    AccountTotals,
    Alert,
    Collected,
    Delivered,
    DeliveredRecord,
    Intent,
    Refusal,
    StateStore,
    retired_key,
)
from popkeep.state.sqlite import SQLiteStore

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SINKS = ("maildir", "imap")

StoreFactory = Callable[[Path], StateStore]


def _sqlite(tmp: Path) -> StateStore:
    return SQLiteStore.open(tmp / "state" / "popkeep.sqlite")


STORE_FACTORIES: dict[str, StoreFactory] = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def factory(request: pytest.FixtureRequest) -> StoreFactory:
    return STORE_FACTORIES[request.param]


@pytest.fixture
def store(factory: StoreFactory, tmp_path: Path) -> Iterator[StateStore]:
    s = factory(tmp_path)
    yield s
    s.close()


@pytest.fixture
def other(factory: StoreFactory, tmp_path: Path) -> Iterator[StateStore]:
    """A second handle on the same store, as another popkeep process would open it."""
    s = factory(tmp_path)
    yield s
    s.close()


def delivered(uid: str, sinks: tuple[str, ...] = SINKS, sha: str | None = None) -> Delivered:
    sha256 = sha or f"{uid:0>64}"[-64:]
    return Delivered(uid, sha256, 100, tuple(Receipt(s, f"{s}-ref-{uid}") for s in sinks))


def test_empty_store_knows_nothing(store: StateStore) -> None:
    assert store.messages("a") == {}
    assert store.find_by_hash("a", "0" * 64) is None
    assert store.pending_intents("a") == []
    assert store.runs() == []
    assert store.accounts() == []
    assert store.account_totals("a") == AccountTotals(0, 0, 0, 0, 0, 0)


def test_full_coverage_is_delivered_with_first_retrieved_at(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1")], SINKS, T0)
    msg = store.messages("a")["u1"]
    assert msg.state is MessageState.DELIVERED
    assert msg.first_retrieved_at == T0
    assert msg.first_retrieved_at.tzinfo is not None
    assert msg.sinks == frozenset(SINKS)
    assert msg.size == 100
    assert msg.sha256 == delivered("u1").sha256
    assert msg.on_server


def test_partial_coverage_stays_seen_until_completed(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1", ("maildir",))], SINKS, T0)
    msg = store.messages("a")["u1"]
    assert msg.state is MessageState.SEEN
    assert msg.first_retrieved_at is None
    assert msg.sinks == {"maildir"}
    later = T0 + timedelta(hours=1)
    store.record_delivered("a", [delivered("u1", ("imap",))], SINKS, later)
    msg = store.messages("a")["u1"]
    assert msg.state is MessageState.DELIVERED
    assert msg.first_retrieved_at == later
    assert msg.sinks == frozenset(SINKS)


def test_first_retrieved_at_is_never_moved(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1")], SINKS, T0)
    store.record_delivered("a", [delivered("u1")], SINKS, T0 + timedelta(days=3))
    assert store.messages("a")["u1"].first_retrieved_at == T0


def test_new_sink_makes_delivered_message_seen_again(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1", ("maildir",))], ("maildir",), T0)
    assert store.messages("a")["u1"].state is MessageState.DELIVERED
    store.record_delivered("a", [delivered("u1", ("maildir",))], SINKS, T0)
    assert store.messages("a")["u1"].state is MessageState.SEEN


def test_accounts_are_separate(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1")], SINKS, T0)
    store.record_delivered("b", [delivered("u2")], SINKS, T0)
    assert set(store.messages("a")) == {"u1"}
    assert set(store.messages("b")) == {"u2"}
    assert store.find_by_hash("b", delivered("u1").sha256) is None
    assert store.accounts() == ["a", "b"]


def test_journal_and_record_delivered_clears_intents(store: StateStore) -> None:
    intents = [Intent("a", f"u{i}", f"k{i}", f"{i:064}", 10 + i, SINKS) for i in range(3)]
    store.journal(intents)
    store.journal([Intent("b", "u9", "k9", "9" * 64, 9, ("maildir",))])
    assert sorted(store.pending_intents("a"), key=lambda i: i.uid) == intents
    store.record_delivered("a", [delivered("u1")], SINKS, T0)
    assert {i.uid for i in store.pending_intents("a")} == {"u0", "u2"}
    assert [i.uid for i in store.pending_intents("b")] == ["u9"]


def test_journal_replaces_intent_for_same_uid(store: StateStore) -> None:
    store.journal([Intent("a", "u1", "k1", "1" * 64, 1, SINKS)])
    store.journal([Intent("a", "u1", "k2", "2" * 64, 2, ("imap",))])
    assert store.pending_intents("a") == [Intent("a", "u1", "k2", "2" * 64, 2, ("imap",))]


def test_find_by_hash_prefers_delivered(store: StateStore) -> None:
    sha = "f" * 64
    store.record_delivered("a", [delivered("seen", ("maildir",), sha)], SINKS, T0)
    assert store.find_by_hash("a", sha).uid == "seen"  # type: ignore[union-attr]
    store.record_delivered("a", [delivered("done", SINKS, sha)], SINKS, T0)
    found = store.find_by_hash("a", sha)
    assert found is not None
    assert found.uid == "done"
    assert found.state is MessageState.DELIVERED
    assert found.sinks == frozenset(SINKS)


def test_adopt_copies_receipts_hash_and_first_retrieved(store: StateStore) -> None:
    store.record_delivered("a", [delivered("old")], SINKS, T0)
    original = store.messages("a")["old"]
    store.mark_gone("a", ["old"], T0 + timedelta(days=1))
    store.adopt("a", "new", original, 123, 125)
    new = store.messages("a")["new"]
    assert (new.listed_size, new.digest) == (125, original.digest)
    assert new.state is MessageState.DELIVERED  # listed on the server, content delivered
    assert new.size == 123
    assert new.sha256 == original.sha256
    assert new.first_retrieved_at == T0
    assert new.sinks == frozenset(SINKS)
    assert store.messages("a")["old"].state is MessageState.GONE


def test_adopt_of_partially_delivered_content_stays_seen(store: StateStore) -> None:
    store.record_delivered("a", [delivered("old", ("maildir",))], SINKS, T0)
    store.adopt("a", "new", store.messages("a")["old"], 100)
    new = store.messages("a")["new"]
    assert new.state is MessageState.SEEN
    assert new.sinks == {"maildir"}


def test_what_a_message_was_when_collected_is_kept(store: StateStore) -> None:
    with_identity = delivered("u1")._replace(listed_size=104, digest="d" * 64)
    store.record_delivered("a", [with_identity, delivered("u2")], SINKS, T0)
    store.record_delivered("a", [with_identity._replace(receipts=())], SINKS, T0)  # known uid
    msgs = store.messages("a")
    assert (msgs["u1"].listed_size, msgs["u1"].digest) == (104, "d" * 64)
    assert (msgs["u2"].listed_size, msgs["u2"].digest) == (None, None)  # not recorded


def test_retire_frees_the_uid_and_keeps_the_old_record(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1"), delivered("u2"), delivered("u3")], SINKS, T0)
    store.record_delivered("b", [delivered("u1")], SINKS, T0)
    store.mark_deleted("a", ["u2"], T0)
    store.record_refusals("a", [Refusal("u3", "imap", 100, "f" * 64, "too big", T0)])
    t1 = T0 + timedelta(days=1)
    keys = store.retire("a", ["u1", "u2", "u3"], t1)
    assert keys == {u: retired_key(u, t1) for u in ("u1", "u2", "u3")}
    msgs = store.messages("a")
    assert not {"u1", "u2", "u3"} & msgs.keys()
    old = msgs[keys["u1"]]
    assert (old.state, old.gone_at, old.sinks) == (MessageState.GONE, t1, frozenset(SINKS))
    assert msgs[keys["u2"]].state is MessageState.DELETED  # deleted by us stays deleted
    assert store.find_by_hash("a", old.sha256 or "") == old  # dedup still knows the content
    assert [r.uid for r in store.refusals("a")] == [keys["u3"]]
    assert store.messages("b")["u1"].state is MessageState.DELIVERED  # other accounts untouched
    store.record_delivered("a", [delivered("u1", sha="e" * 64)], SINKS, t1)  # the new message
    assert store.messages("a")["u1"].sha256 == "e" * 64
    assert store.retire("a", [], t1) == {}


def test_live_octets_sum_what_list_said_of_the_messages_on_the_server(store: StateStore) -> None:
    assert store.live_octets("a") == (0, 0)
    rows = [delivered(u)._replace(listed_size=n) for u, n in (("u1", 10), ("u2", 20), ("u3", 40))]
    store.record_delivered("a", [*rows, delivered("u4", ("maildir",))], SINKS, T0)  # u4: SEEN
    store.mark_gone("a", ["u3"], T0)
    assert store.live_octets("a") == (30, 1)  # u4 has no listed size recorded
    store.record_listed_sizes("a", {"u1": 12, "u4": 5})
    assert store.live_octets("a") == (37, 0)
    assert store.messages("a")["u1"].listed_size == 12
    store.record_listed_sizes("a", {})
    store.record_listed_sizes("a", {"u2": 21}, {"u2": "d" * 64})
    store.record_listed_sizes("a", {}, {"u2": "e" * 64})  # a recorded digest is kept
    assert (store.messages("a")["u2"].listed_size, store.messages("a")["u2"].digest) == (
        21, "d" * 64)


def test_mark_collected_records_delivered_messages_without_content(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1", sha="e" * 64)], SINKS, T0)
    t1, then = T0 + timedelta(days=3), T0 - timedelta(days=40)
    entries = [Collected("u1"), Collected("u2", then), Collected("u3", None, 1234, "d" * 64),
               Collected("u2", t1)]  # a uid twice: its first entry counts
    assert store.mark_collected("a", entries, SINKS, "imported from fetchmail", t1) == 2
    msgs = store.messages("a")
    assert msgs["u1"].sha256 == "e" * 64 and msgs["u1"].first_retrieved_at == T0  # kept
    u2, u3 = msgs["u2"], msgs["u3"]
    assert (u2.state, u2.first_retrieved_at, u2.sinks) == (
        MessageState.DELIVERED, then, frozenset(SINKS))
    assert (u2.sha256, u2.size, u2.listed_size, u2.digest) == (None, 0, None, None)
    assert (u3.first_retrieved_at, u3.size, u3.listed_size, u3.digest) == (
        t1, 1234, 1234, "d" * 64)
    assert sorted(store.uids_by_state("a")[MessageState.DELIVERED]) == ["u1", "u2", "u3"]
    assert "u2" not in store.messages("b")
    assert store.mark_collected("a", entries, SINKS, "again", t1) == 0
    assert store.mark_collected("a", [], SINKS, "nothing", t1) == 0
    store.mark_gone("a", ["u2"], t1)
    assert store.mark_collected("a", [Collected("u2")], SINKS, "gone stays", t1) == 0
    assert store.messages("a")["u2"].state is MessageState.GONE


def test_a_uid_is_never_a_retired_key() -> None:
    key = retired_key("uid-1", T0)
    assert key.startswith("uid-1 ") and " " in key  # RFC 1939 §7: a UIDL has no space


def test_delete_lifecycle(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1"), delivered("u2")], SINKS, T0)
    t1 = T0 + timedelta(days=14)
    store.mark_delete_pending("a", ["u1", "u2"], t1)
    assert store.messages("a")["u1"].state is MessageState.DELETE_PENDING
    store.revert_delete_pending("a", ["u2"])
    store.mark_deleted("a", ["u1"], t1)
    msgs = store.messages("a")
    assert msgs["u1"].state is MessageState.DELETED
    assert msgs["u1"].deleted_at == t1
    assert not msgs["u1"].on_server
    assert msgs["u2"].state is MessageState.DELIVERED
    assert msgs["u2"].deleted_at is None


def test_delivered_oldest_first_gives_the_delivered_records_by_age(store: StateStore) -> None:
    """What retention.doomed reads: DELIVERED only, oldest first_retrieved_at first, ties
    by uid; the records messages() has."""
    later, earlier = T0 + timedelta(days=2), T0 - timedelta(days=2)
    store.record_delivered("a", [delivered("u3"), delivered("u1")], SINKS, later)
    store.record_delivered("a", [delivered("u2")], SINKS, earlier)
    store.record_delivered("a", [delivered("u9", ("maildir",))], SINKS, T0)  # SEEN
    store.mark_collected("a", [Collected("u0")], SINKS, "imported", T0)
    store.record_delivered("a", [delivered("u5"), delivered("u6")], SINKS, T0)
    store.mark_gone("a", ["u5"], later)
    store.mark_delete_pending("a", ["u6"], later)
    store.record_delivered("b", [delivered("u4")], SINKS, earlier)
    got = list(store.delivered_oldest_first("a"))
    assert [m.uid for m in got] == ["u2", "u0", "u1", "u3"]
    every = store.messages("a")
    assert got == [every[m.uid] for m in got]
    assert list(store.delivered_oldest_first("nobody")) == []


def test_a_stream_left_half_read_does_not_hold_the_store(store: StateStore) -> None:
    """A caller that stops iterating delivered_oldest_first (an exception half way)
    must not leave the store locked: the next call, from any thread, is served."""
    store.record_delivered("a", [delivered(f"u{i}") for i in range(3)], SINKS, T0)
    stream = store.delivered_oldest_first("a")
    assert next(stream).uid == "u0"
    answered: list[AccountTotals] = []
    other = threading.Thread(target=lambda: answered.append(store.account_totals("a")))
    other.start()
    other.join(timeout=10)
    done = not other.is_alive()
    stream.close()  # lets a blocked call go on, so the thread ends either way
    other.join()
    assert done and answered[0].delivered == 3


def test_records_are_those_of_the_uids_asked(store: StateStore) -> None:
    store.record_delivered("a", [delivered(f"u{i}") for i in range(1200)], SINKS, T0)
    store.mark_gone("a", ["u2"], T0)
    store.record_delivered("b", [delivered("x")], SINKS, T0)
    wanted = [f"u{i}" for i in range(0, 1200, 2)] + ["x", "unknown"]
    every = store.messages("a")
    assert store.records("a", wanted) == {uid: every[uid] for uid in wanted[:-2]}
    assert store.records("a", []) == {}


def test_seen_message_is_never_marked_for_deletion(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1", ("maildir",))], SINKS, T0)
    store.mark_delete_pending("a", ["u1"], T0)
    assert store.messages("a")["u1"].state is MessageState.SEEN


def test_mark_gone(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1"), delivered("u2")], SINKS, T0)
    store.mark_deleted("a", ["u2"], T0)
    t1 = T0 + timedelta(hours=5)
    store.mark_gone("a", ["u1", "u2", "unknown"], t1)
    msgs = store.messages("a")
    assert msgs["u1"].state is MessageState.GONE
    assert msgs["u1"].gone_at == t1
    assert msgs["u2"].state is MessageState.DELETED  # deleted by us stays deleted
    assert "unknown" not in msgs


def test_empty_iterables_are_no_ops(store: StateStore) -> None:
    store.journal([])
    store.record_delivered("a", [], SINKS, T0)
    store.mark_delete_pending("a", iter(()), T0)
    store.mark_deleted("a", [], T0)
    store.revert_delete_pending("a", [])
    store.mark_gone("a", [], T0)
    assert store.messages("a") == {}


def _run(account: str, started: datetime, listed: int, delivered: int) -> RunSummary:
    finished = started + timedelta(seconds=2)
    return RunSummary(account, started, finished, "ok", listed=listed, delivered=delivered)


def test_runs_most_recent_first_and_filtered(store: StateStore) -> None:
    runs = [_run("a", T0 + timedelta(minutes=i), listed=i, delivered=i) for i in range(5)]
    failed = RunSummary("b", T0, T0, "TransportError", "reset", server_octets=7, adopted=1)
    for r in [*runs, failed]:
        store.record_run(r)
    assert store.runs("a") == runs[::-1]
    assert store.runs("a", limit=2) == runs[:2:-1][:2]
    assert store.runs("b") == [failed]
    assert len(store.runs()) == 6
    assert store.accounts() == ["a", "b"]


def test_account_totals(store: StateStore) -> None:
    store.record_delivered(
        "a", [delivered(f"u{i}") for i in range(5)] + [delivered("s", ("imap",))], SINKS, T0
    )
    store.mark_delete_pending("a", ["u0"], T0)
    store.mark_deleted("a", ["u1"], T0)
    store.mark_gone("a", ["u2"], T0)
    assert store.account_totals("a") == AccountTotals(
        messages=6, delivered=5, on_server=4, on_server_bytes=400, deleted=1, gone=1
    )


def test_delivered_history_is_every_message_ever_delivered(store: StateStore) -> None:
    """What ``popkeep plan --from-state`` measures: delivered ones, wherever they are now."""
    t1 = T0 + timedelta(days=1)
    store.record_delivered("a", [delivered(f"u{i}") for i in range(4)], SINKS, T0)
    store.record_delivered("a", [delivered("late")], SINKS, t1)
    store.record_delivered("a", [delivered("partial", ("imap",))], SINKS, T0)  # never delivered
    store.record_delivered("b", [delivered("other")], SINKS, T0)
    store.mark_delete_pending("a", ["u0"], t1)
    store.mark_deleted("a", ["u1"], t1)
    store.mark_gone("a", ["u2"], t1)
    history = sorted(store.delivered_history("a"))
    assert history == sorted([
        DeliveredRecord(T0, 100, True),  # u0: delete pending, still in the maildrop
        DeliveredRecord(T0, 100, False),  # u1: deleted
        DeliveredRecord(T0, 100, False),  # u2: gone
        DeliveredRecord(T0, 100, True),  # u3
        DeliveredRecord(t1, 100, True),  # late
    ])  # fmt: skip
    assert all(r.first_retrieved_at.tzinfo is not None for r in history)
    assert len(store.delivered_history()) == 6
    assert store.delivered_history("nobody") == []


def test_naive_datetime_is_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="naive"):
        store.record_delivered("a", [delivered("u1")], SINKS, datetime(2026, 1, 1))
    assert store.messages("a") == {}


def test_times_come_back_as_utc_whatever_zone_went_in(store: StateStore) -> None:
    from datetime import timezone

    tokyo = timezone(timedelta(hours=9))
    store.record_delivered("a", [delivered("u1")], SINKS, T0.astimezone(tokyo))
    first = store.messages("a")["u1"].first_retrieved_at
    assert first == T0
    assert first is not None
    assert first.utcoffset() == timedelta(0)


def test_uids_by_state_agree_with_messages(store: StateStore) -> None:
    assert store.uids_by_state("a") == {}
    store.record_delivered("a", [delivered(f"u{i}") for i in range(5)], SINKS, T0)
    store.record_delivered("a", [delivered("partial", ("maildir",))], SINKS, T0)
    store.mark_delete_pending("a", ["u1"], T0)
    store.mark_deleted("a", ["u1"], T0)
    store.mark_gone("a", ["u2"], T0)
    store.record_delivered("b", [delivered("u0")], SINKS, T0)
    grouped = store.uids_by_state("a")
    states = {uid: st for st, uids in grouped.items() for uid in uids}
    assert sum(map(len, grouped.values())) == len(states)  # no uid under two states
    assert states == {uid: m.state for uid, m in store.messages("a").items()}
    assert states["u1"] is MessageState.DELETED and states["u2"] is MessageState.GONE
    assert states["partial"] is MessageState.SEEN and states["u0"] is MessageState.DELIVERED
    assert sorted(grouped[MessageState.DELIVERED]) == ["u0", "u3", "u4"]
    assert store.uids_by_state("nobody") == {}


def test_known_hashes_finds_only_this_accounts_content(store: StateStore) -> None:
    store.record_delivered("a", [delivered("u1", sha="1" * 64)], SINKS, T0)
    store.record_delivered("b", [delivered("u2", sha="2" * 64)], SINKS, T0)
    many = [f"{i:064x}" for i in range(1200)]  # more than one chunk of parameters
    assert store.known_hashes("a", ["1" * 64, "2" * 64, *many]) == {"1" * 64}
    assert store.known_hashes("a", []) == set()


def test_an_account_lock_excludes_every_other_holder(store: StateStore, other: StateStore) -> None:
    with store.lock("a") as held:
        assert held is True
        with other.lock("a") as second:
            assert second is False  # another process
        with store.lock("a") as again:
            assert again is False  # not reentrant, even through the same handle
        with other.lock("b") as unrelated:
            assert unrelated is True  # accounts are independent
    with other.lock("a") as after:
        assert after is True  # released on leaving the block


def test_an_account_lock_is_released_when_the_block_raises(
    store: StateStore, other: StateStore
) -> None:
    with pytest.raises(RuntimeError), store.lock("a") as held:
        assert held
        raise RuntimeError("the pass failed")
    with other.lock("a") as after:
        assert after is True


# -- failure streaks and alerts -------------------------------------------------------


def _outcome(account: str, minutes: int, outcome: str) -> RunSummary:
    started = T0 + timedelta(minutes=minutes)
    return RunSummary(account, started, started, outcome, None if outcome == "ok" else "down")


def test_failing_since_is_the_first_failed_run_after_the_last_ok_one(store: StateStore) -> None:
    assert store.failing_since("a") is None  # no runs
    store.record_run(_outcome("a", 0, "TransportError"))
    assert store.failing_since("a") == T0  # failing from the very first run
    store.record_run(_outcome("a", 1, "ok"))
    assert store.failing_since("a") is None
    for minute in (2, 3, 4):
        store.record_run(_outcome("a", minute, "AuthError"))
    store.record_run(_outcome("b", 5, "ok"))  # another account's success changes nothing
    assert store.failing_since("a") == T0 + timedelta(minutes=2)
    store.record_run(_outcome("a", 6, "ok"))
    assert store.failing_since("a") is None


def test_runs_beyond_the_newest_kept_are_forgotten(store: StateStore) -> None:
    """Each account keeps its newest RUNS_KEPT runs: the last one (``popkeep status``)
    and the recent ones (the dashboard's History) are there, the older ones are gone,
    and another account's history is its own."""
    extra = 30
    for minute in range(RUNS_KEPT + extra):
        store.record_run(_outcome("a", minute, "ok"))
    store.record_run(_outcome("b", 0, "ok"))
    kept = store.runs("a", limit=10 * RUNS_KEPT)
    assert [r.started_at for r in kept] == [T0 + timedelta(minutes=m) for m in
                                            reversed(range(extra, RUNS_KEPT + extra))]
    assert store.runs("a", limit=1)[0].started_at == T0 + timedelta(minutes=RUNS_KEPT + extra - 1)
    assert len(store.runs("b")) == 1
    assert len(store.runs(limit=10 * RUNS_KEPT)) == RUNS_KEPT + 1


def test_a_failure_streak_longer_than_the_runs_kept_keeps_its_start(store: StateStore) -> None:
    """The first run of a failure streak outlives the pruning, so the alerts' clock
    (``failing_since``) counts from the real start however long the streak; once a
    run succeeds, it goes like any other."""
    for minute in range(5):
        store.record_run(_outcome("a", minute, "ok"))
    streak = RUNS_KEPT + 20
    for minute in range(5, 5 + streak):
        store.record_run(_outcome("a", minute, "TransportError"))
    assert store.failing_since("a") == T0 + timedelta(minutes=5)
    kept = store.runs("a", limit=10 * RUNS_KEPT)
    assert len(kept) == RUNS_KEPT + 1 and kept[-1].started_at == T0 + timedelta(minutes=5)
    store.record_run(_outcome("a", 5 + streak, "ok"))
    assert store.failing_since("a") is None
    assert len(store.runs("a", limit=10 * RUNS_KEPT)) == RUNS_KEPT


def test_a_week_of_polling_keeps_the_store_the_same_size(
    factory: StoreFactory, tmp_path: Path
) -> None:
    """A week of polls every 30 minutes (an injected clock) of an account that works
    and one that fails for four days: once each has RUNS_KEPT runs (the third day),
    the run history stops growing, and so does the database on disk (measured closed:
    what it keeps, not SQLite's write-ahead log)."""
    clock = FakeClock(T0)
    days: list[tuple[int, int]] = []  #: (runs kept, octets on disk) at the end of each day
    for day in range(7):
        store = factory(tmp_path)
        try:
            for _ in range(24 * 2):
                now = clock.now()
                store.record_run(RunSummary("ok", now, now, "ok", None))
                failing = timedelta(days=1) <= now - T0 < timedelta(days=5)
                outcome, error = ("TransportError", "down") if failing else ("ok", None)
                store.record_run(RunSummary("flaky", now, now, outcome, error))
                clock.advance(timedelta(minutes=30))
            if day == 4:
                assert store.failing_since("flaky") == T0 + timedelta(days=1)
            kept = len(store.runs(limit=10**6))
        finally:
            store.close()
        days.append((kept, sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())))
    assert {kept for kept, _ in days[2:]} <= {2 * RUNS_KEPT, 2 * RUNS_KEPT + 1}
    # A page or two while the B-trees settle, then not an octet more (here 86 → 90 KB
    # on the third and fourth day; keeping every run: 147 KB after the week, growing).
    assert max(octets for _, octets in days[2:]) <= days[2][1] * 1.1
    assert days[-1][1] <= days[3][1]


def _alert(condition: str = "failing", minutes: int = 0) -> Alert:
    at = T0 + timedelta(minutes=minutes)
    return Alert("a", condition, at, at - timedelta(hours=13), "no connection")


def test_an_alert_is_raised_once_per_active_condition(store: StateStore) -> None:
    assert store.open_alerts("a") == []
    assert store.raise_alert(_alert())
    assert not store.raise_alert(_alert(minutes=5))  # already active: not again
    assert store.raise_alert(_alert("quota", minutes=1))
    assert store.open_alerts("a") == [_alert(), _alert("quota", minutes=1)]
    assert store.open_alerts("b") == []


def test_settled_alerts_beyond_the_newest_kept_are_forgotten(store: StateStore) -> None:
    """A server that fails now and then raises and clears an alert again and again:
    the account keeps its newest ALERTS_KEPT settled ones, every open one (even an
    older one whose clearing notice is still owed), and other accounts keep theirs."""
    owed = _alert("quota", minutes=-1)
    store.raise_alert(owed)
    store.clear_alert("a", "quota", T0)  # its clearing notice never delivered
    other = Alert("b", "failing", T0, T0, "down")
    store.raise_alert(other)
    store.clear_alert("b", "failing", T0)
    store.alert_told(other, cleared=True, now=T0)
    cycles = ALERTS_KEPT + 20
    for minute in range(cycles):
        alert = _alert(minutes=minute)
        store.raise_alert(alert)
        store.clear_alert("a", "failing", alert.raised_at)
        store.alert_told(alert, cleared=True, now=alert.raised_at)
    kept = store.recent_alerts("a", limit=10 * ALERTS_KEPT)
    settled = [a.raised_at for a in kept if a.condition == "failing"]
    assert settled == [T0 + timedelta(minutes=m) for m in reversed(range(20, cycles))]
    assert [a.condition for a in store.open_alerts("a")] == ["quota"]
    assert len(store.recent_alerts("b")) == 1


def test_recent_alerts_include_the_settled_ones_newest_first(store: StateStore) -> None:
    assert store.recent_alerts("a") == []
    old = _alert()
    store.raise_alert(old)
    store.alert_told(old, cleared=False, now=T0)
    store.clear_alert("a", "failing", T0 + timedelta(hours=1))
    store.alert_told(old, cleared=True, now=T0 + timedelta(hours=1))
    assert store.open_alerts("a") == []  # settled: history
    store.raise_alert(_alert(minutes=90))
    recent = store.recent_alerts("a")
    assert [(a.raised_at, a.active) for a in recent] == [(T0 + timedelta(minutes=90), True),
                                                          (T0, False)]
    assert recent[1].cleared_at == T0 + timedelta(hours=1)
    assert store.recent_alerts("a", limit=1) == recent[:1]
    assert store.recent_alerts("b") == []


def test_an_alert_lives_until_its_clearing_notice_is_told(store: StateStore) -> None:
    alert = _alert()
    store.raise_alert(alert)
    store.alert_told(alert, cleared=False, now=T0)
    [told] = store.open_alerts("a")
    assert told.raised_sent_at == T0 and told.active
    assert store.clear_alert("a", "failing", T0 + timedelta(hours=1))
    assert not store.clear_alert("a", "failing", T0 + timedelta(hours=2))  # nothing active
    [cleared] = store.open_alerts("a")
    assert cleared.cleared_at == T0 + timedelta(hours=1) and not cleared.active
    assert store.raise_alert(_alert(minutes=90))  # the condition may come back meanwhile
    store.alert_told(cleared, cleared=True, now=T0 + timedelta(hours=1))
    assert [a.raised_at for a in store.open_alerts("a")] == [T0 + timedelta(minutes=90)]

"""retention.decide: a table of cases, quota ordering, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from popkeep.model import MessageState, RetentionPolicy, ServerStat, StoredMessage
from popkeep.retention import Decision, decide, doomed, schedule

NOW = datetime(2026, 11, 15, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def msg(
    uid: str,
    age: timedelta | None = DAY,
    state: MessageState = MessageState.DELIVERED,
    size: int = 100,
) -> StoredMessage:
    first = None if age is None else NOW - age
    return StoredMessage("isp", uid, size, state, "0" * 64, first_retrieved_at=first)


def one(m: StoredMessage, policy: RetentionPolicy, server: ServerStat | None = None) -> Decision:
    (decision,) = decide([m], server, policy, NOW)
    return decision


@pytest.mark.parametrize(
    ("delete_after", "age", "delete", "reason"),
    [
        (None, 400 * DAY, False, "kept: delete_after = never"),
        (timedelta(0), timedelta(0), True, "delete_after 0s elapsed (first retrieved 2026-11-15"),
        (
            14 * DAY,
            14 * DAY,
            True,
            "delete_after 14d elapsed (first retrieved 2026-11-01 10:00 UTC)",
        ),
        (14 * DAY, 14 * DAY - timedelta(microseconds=1), False, "kept: due 2026-11-15 10:00 UTC"),
        (14 * DAY, 3 * DAY, False, "kept: due 2026-11-26 10:00 UTC"),
        (timedelta(hours=36), 2 * DAY, True, "delete_after 36h elapsed"),
        (timedelta(seconds=90), timedelta(seconds=89), False, "kept: due 2026-11-15 10:00 UTC"),
    ],
)
def test_delete_after(
    delete_after: timedelta | None, age: timedelta, delete: bool, reason: str
) -> None:
    d = one(msg("u", age), RetentionPolicy(delete_after=delete_after))
    assert d.delete is delete
    assert d.reason.startswith(reason)
    if delete_after is None:
        assert d.due_at is None
    else:
        assert d.due_at == NOW - age + delete_after


def test_boundary_exactly_at_due_time_is_deleted() -> None:
    d = one(msg("u", 14 * DAY), RetentionPolicy(delete_after=14 * DAY))
    assert d.delete
    assert d.due_at == NOW


@pytest.mark.parametrize("state", [MessageState.SEEN])
def test_seen_is_never_deleted_even_over_quota(state: MessageState) -> None:
    policy = RetentionPolicy(delete_after=timedelta(0), server_quota=1000)
    d = one(msg("u", 30 * DAY, state, size=5000), policy, ServerStat(1, 5000))
    assert not d.delete
    assert "not yet delivered to every sink" in d.reason


@pytest.mark.parametrize(
    "state", [MessageState.DELETE_PENDING, MessageState.DELETED, MessageState.GONE]
)
def test_messages_off_the_server_get_no_decision(state: MessageState) -> None:
    assert decide([msg("u", 30 * DAY, state)], None, RetentionPolicy(timedelta(0)), NOW) == []


def test_quota_deletes_oldest_first_down_to_low_water() -> None:
    policy = RetentionPolicy(delete_after=None, server_quota=1000, high_water=0.9, low_water=0.7)
    messages = [msg(f"u{age}", age * DAY, size=100) for age in (3, 9, 1, 7, 5)]
    decisions = {d.uid: d for d in decide(messages, ServerStat(10, 950), policy, NOW)}
    # 950 -> 850 (u9) -> 750 (u7) -> 650 (u5) <= 700: stop.
    assert {u for u, d in decisions.items() if d.delete} == {"u9", "u7", "u5"}
    assert decisions["u9"].reason.startswith("quota: 950 B on the server > 90% of 1.0 kB")
    assert "down to 70%" in decisions["u9"].reason
    assert decisions["u3"].reason == "kept: delete_after = never"


def test_quota_counts_what_list_says_a_message_takes_on_the_server() -> None:
    """STAT counts LIST's octets; a message marked collected without being fetched
    (popkeep import-state) has only those."""
    policy = RetentionPolicy(delete_after=None, server_quota=1000, high_water=0.9, low_water=0.7)
    imported = msg("u9", 9 * DAY, size=0)._replace(listed_size=300)
    messages = [imported, msg("u7", 7 * DAY, size=95)._replace(listed_size=100), msg("u1", DAY)]
    decisions = {d.uid: d for d in decide(messages, ServerStat(3, 950), policy, NOW)}
    assert {u for u, d in decisions.items() if d.delete} == {"u9"}  # 950 - 300 <= 700


def test_quota_below_high_water_deletes_nothing() -> None:
    policy = RetentionPolicy(delete_after=None, server_quota=1000)
    messages = [msg(f"u{i}", i * DAY) for i in range(9)]
    assert not any(d.delete for d in decide(messages, ServerStat(9, 900), policy, NOW))


def test_quota_counts_age_deletions_first() -> None:
    policy = RetentionPolicy(delete_after=10 * DAY, server_quota=1000)
    messages = [msg("old", 20 * DAY, size=300), msg("mid", 5 * DAY), msg("new", DAY)]
    decisions = {d.uid: d for d in decide(messages, ServerStat(3, 950), policy, NOW)}
    assert decisions["old"].delete
    assert decisions["old"].reason.startswith("delete_after 10d elapsed")
    assert not decisions["mid"].delete  # 950 - 300 = 650 <= 700 already
    assert not decisions["new"].delete


def test_quota_that_cannot_be_met_deletes_all_delivered_and_warns() -> None:
    policy = RetentionPolicy(delete_after=None, server_quota=1000)
    messages = [msg("a", 2 * DAY), msg("b", DAY), msg("s", 3 * DAY, MessageState.SEEN, 900)]
    decisions = {d.uid: d for d in decide(messages, ServerStat(3, 1100), policy, NOW)}
    assert decisions["a"].delete and decisions["b"].delete
    assert "even deleting every delivered message leaves 900 B" in decisions["a"].reason
    assert "warning" in decisions["b"].reason
    assert not decisions["s"].delete


def test_quota_without_stat_is_ignored() -> None:
    policy = RetentionPolicy(delete_after=None, server_quota=1)
    assert not one(msg("u", 99 * DAY), policy, None).delete


def test_schedule_lists_future_deletions_soonest_first() -> None:
    policy = RetentionPolicy(delete_after=14 * DAY)
    messages = [
        msg("late", DAY),
        msg("due", 20 * DAY),
        msg("soon", 10 * DAY),
        msg("s", DAY, MessageState.SEEN),
    ]
    plan = schedule(messages, None, policy, NOW)
    assert [d.uid for d in plan] == ["soon", "late"]
    assert plan[0].due_at == NOW + 4 * DAY


def test_input_order_is_kept() -> None:
    messages = [msg(f"u{i}", i * DAY) for i in (5, 1, 3)]
    assert [d.uid for d in decide(messages, None, RetentionPolicy(), NOW)] == ["u5", "u1", "u3"]


# -- properties ------------------------------------------------------------------------

_states = st.sampled_from(list(MessageState))
_messages = st.lists(
    st.builds(
        lambda i, age, state, size: msg(f"u{i}", timedelta(seconds=age), state, size),
        st.integers(0, 10_000),
        st.integers(0, 60 * 86_400),
        _states,
        st.integers(1, 10_000),
    ),
    max_size=30,
    unique_by=lambda m: m.uid,
)
_after = st.one_of(st.none(), st.integers(0, 90 * 86_400).map(lambda s: timedelta(seconds=s)))


@given(
    _messages,
    _after,
    st.one_of(st.none(), st.integers(1, 200_000)),
    st.integers(0, 400_000),
)
def test_never_deletes_anything_but_delivered(
    messages: list[StoredMessage], after: timedelta | None, quota: int | None, octets: int
) -> None:
    policy = RetentionPolicy(delete_after=after, server_quota=quota)
    states = {m.uid: m.state for m in messages}
    for d in decide(messages, ServerStat(len(messages), octets), policy, NOW):
        if d.delete:
            assert states[d.uid] is MessageState.DELIVERED


@given(_messages, _after, st.integers(0, 90 * 86_400))
def test_longer_delete_after_never_adds_deletions(
    messages: list[StoredMessage], after: timedelta | None, extra: int
) -> None:
    shorter = RetentionPolicy(delete_after=after)
    longer = RetentionPolicy(
        delete_after=None if after is None else after + timedelta(seconds=extra)
    )
    deleted_short = {d.uid for d in decide(messages, None, shorter, NOW) if d.delete}
    deleted_long = {d.uid for d in decide(messages, None, longer, NOW) if d.delete}
    assert deleted_long <= deleted_short
    never = {d.uid for d in decide(messages, None, RetentionPolicy(None), NOW) if d.delete}
    assert never == set()


# -- doomed: decide's deletions, streamed ----------------------------------------------

# Ages of a few distinct values (batches share their first retrieval time: ties),
# unknown ones (None) and times after now (a clock set back since).
_ages = st.one_of(
    st.none(), st.sampled_from([-DAY, timedelta(0), DAY, 3 * DAY, 20 * DAY, 40 * DAY])
)
_held = st.lists(
    st.builds(
        lambda i, age, state, size, listed: msg(f"u{i}", age, state, size)._replace(
            listed_size=listed
        ),
        st.integers(0, 10_000),
        _ages,
        _states,
        st.integers(1, 10_000),
        st.one_of(st.none(), st.integers(1, 10_000)),
    ),
    max_size=30,
    unique_by=lambda m: m.uid,
)


def _oldest_first(messages: list[StoredMessage]) -> list[StoredMessage]:
    """What StateStore.delivered_oldest_first gives: DELIVERED, oldest first, None last."""
    held = [m for m in messages if m.state is MessageState.DELIVERED]
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(held, key=lambda m: (m.first_retrieved_at or never, m.uid))


@given(
    _held,
    st.one_of(st.none(), st.sampled_from([timedelta(0), DAY, 14 * DAY])),
    st.one_of(st.none(), st.integers(1, 200_000)),
    st.integers(0, 400_000),
)
def test_doomed_deletes_what_decide_deletes(
    messages: list[StoredMessage], after: timedelta | None, quota: int | None, octets: int
) -> None:
    """The collector's streamed decision (one record at a time, from the store, oldest
    first) is decide's: the same messages, whatever the ties, unknown or future times,
    quota and recorded LIST sizes."""
    policy = RetentionPolicy(delete_after=after, server_quota=quota)
    server = ServerStat(len(messages), octets)
    ordered = _oldest_first(messages)
    chosen = [m.uid for m in doomed(lambda: iter(ordered), server, policy, NOW)]
    assert len(chosen) == len(set(chosen))
    assert set(chosen) == {d.uid for d in decide(messages, server, policy, NOW) if d.delete}


def test_doomed_reads_the_messages_again_only_above_the_quota() -> None:
    """Rule 2 needs one pass over the store; the quota a second one, only when STAT is
    above its high mark."""
    messages = [msg(f"u{i}", i * DAY, size=100) for i in range(1, 6)]
    passes: list[int] = []

    def delivered() -> list[StoredMessage]:
        passes.append(1)
        return _oldest_first(messages)

    policy = RetentionPolicy(delete_after=3 * DAY, server_quota=1000)
    below = list(doomed(delivered, ServerStat(5, 500), policy, NOW))
    assert [m.uid for m in below] == ["u5", "u4", "u3"] and len(passes) == 1
    above = list(doomed(delivered, ServerStat(5, 950), policy, NOW))  # > 90 % of 1000
    assert [m.uid for m in above] == ["u5", "u4", "u3"] and len(passes) == 3  # 650 ≤ 700
    far = list(doomed(delivered, ServerStat(5, 1001), policy, NOW))  # 701 > 700
    assert [m.uid for m in far] == ["u5", "u4", "u3", "u2"] and len(passes) == 5

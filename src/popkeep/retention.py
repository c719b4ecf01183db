"""What to delete from a provider's server: a pure function of facts and ``now``.

Owns: the retention decision (README.md, "How ``delete_after`` counts") and its
reasons, used alike by the collector and ``popkeep schedule`` (``App.schedule``).
The planner simulates devices' own "leave on server for N days" rules, not this.
Must not: do I/O, read a clock, or know about stores, sinks or sessions — the
caller passes the messages, the STAT result, the policy and ``now``.

Rules, in order:

1. Only DELIVERED messages (durable in every sink, still on the server) may be
   deleted. SEEN ones (not yet in every sink) are kept whatever the quota says;
   messages already deleted, being deleted or gone get no decision at all.
2. ``delete_after``: ``None`` never; ``0s`` right after delivery; otherwise once
   ``now >= first_retrieved_at + delete_after`` (the boundary itself is due).
3. Quota: when ``server_quota`` is set and STAT reports more than
   ``high_water * quota`` octets, the oldest delivered messages (by
   ``first_retrieved_at``) not chosen by rule 2 are deleted as well until the
   projected usage is at most ``low_water * quota``, even inside the grace window.
   If deleting every delivered message is not enough, all of them go and the
   reasons say the mailbox stays above the mark (a warning for the user).
"""

import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from popkeep.model import MessageState, RetentionPolicy, ServerStat, StoredMessage

_KEEP_UNDELIVERED = "kept: not yet delivered to every sink (never deleted, whatever the quota)"
_KEEP_NEVER = "kept: delete_after = never"
_NEVER = datetime.max.replace(tzinfo=UTC)


class Decision(NamedTuple):
    """Whether to DELE one message, and why (a short string for logs and the CLI)."""

    uid: str
    delete: bool
    reason: str
    #: When it becomes (or became) deletable by age; None when it never will.
    due_at: datetime | None


def decide(
    messages: Iterable[StoredMessage],
    server: ServerStat | None,
    policy: RetentionPolicy,
    now: datetime,
) -> list[Decision]:
    """One decision per SEEN or DELIVERED message, in input order (module docstring)."""
    candidates: list[StoredMessage] = []
    decisions: dict[str, Decision] = {}
    for msg in messages:
        if msg.state is MessageState.SEEN:
            decisions[msg.uid] = Decision(msg.uid, False, _KEEP_UNDELIVERED, None)
        elif msg.state is MessageState.DELIVERED:
            candidates.append(msg)
            decisions[msg.uid] = _by_age(msg, policy.delete_after, now)
    if server is not None and policy.server_quota is not None:
        _apply_quota(candidates, decisions, server, policy)
    return list(decisions.values())


def doomed(
    delivered: Callable[[], Iterable[StoredMessage]],
    server: ServerStat | None,
    policy: RetentionPolicy,
    now: datetime,
) -> Iterator[StoredMessage]:
    """The messages :func:`decide` deletes, streamed: one decision at a time, nothing
    held per message (issue 16 item 3: a pass deciding for 200,000 messages held
    200,000 decisions and records).

    ``delivered()`` gives the DELIVERED messages in the order the quota takes them:
    oldest ``first_retrieved_at`` first, unknown last, ties by uid (the order
    :func:`decide` sorts them in). It is called once, and a second time only when
    STAT is above the quota's high mark: rule 2's deletions come first, in that
    order; then, in the second pass, the oldest of the rest down to the low mark.
    """
    if policy.delete_after is None and policy.server_quota is None:
        return
    aged = 0  # octets of rule 2's deletions
    for msg in delivered():
        if msg.state is MessageState.DELIVERED and _due(msg, policy.delete_after, now):
            aged += _octets(msg)
            yield msg
    quota = policy.server_quota
    if server is None or quota is None or server.octets <= policy.high_water * quota:
        return
    projected, target = server.octets - aged, policy.low_water * quota
    for msg in delivered():
        if projected <= target:
            return
        if msg.state is MessageState.DELIVERED and not _due(msg, policy.delete_after, now):
            projected -= _octets(msg)
            yield msg


def schedule(
    messages: Iterable[StoredMessage],
    server: ServerStat | None,
    policy: RetentionPolicy,
    now: datetime,
) -> list[Decision]:
    """Deletions still to come (kept now, with a due time), soonest first."""
    future = [
        d for d in decide(messages, server, policy, now) if not d.delete and d.due_at is not None
    ]
    return sorted(future, key=lambda d: (d.due_at, d.uid))


def _retrieved(msg: StoredMessage, now: datetime) -> datetime:
    # A DELIVERED row always has first_retrieved_at; if a store ever lacks it,
    # counting from now errs on the side of keeping.
    return msg.first_retrieved_at or now


def _due(msg: StoredMessage, delete_after: timedelta | None, now: datetime) -> bool:
    """Rule 2: due for deletion by age."""
    return delete_after is not None and now >= _retrieved(msg, now) + delete_after


def _by_age(msg: StoredMessage, delete_after: timedelta | None, now: datetime) -> Decision:
    if delete_after is None:
        return Decision(msg.uid, False, _KEEP_NEVER, None)
    first = _retrieved(msg, now)
    due = first + delete_after
    if now >= due:
        return Decision(msg.uid, True, _elapsed(delete_after, first), due)
    return Decision(msg.uid, False, _kept_until(due), due)


# Messages collected in one batch share their first retrieval time, so most reasons
# repeat: one string each, not one per message (a 200,000-message mailbox held 200,000
# copies; issue 16 item 3).
@functools.lru_cache(maxsize=4096)
def _elapsed(delete_after: timedelta, first: datetime) -> str:
    return f"delete_after {_duration(delete_after)} elapsed (first retrieved {_when(first)})"


@functools.lru_cache(maxsize=4096)
def _kept_until(due: datetime) -> str:
    return f"kept: due {_when(due)}"


def _apply_quota(
    candidates: list[StoredMessage],
    decisions: dict[str, Decision],
    server: ServerStat,
    policy: RetentionPolicy,
) -> None:
    """Rule 3: add the oldest delivered messages to the deletions, down to low water."""
    quota = policy.server_quota
    assert quota is not None
    if server.octets <= policy.high_water * quota:
        return
    target = policy.low_water * quota
    projected = server.octets - sum(_octets(m) for m in candidates if decisions[m.uid].delete)
    keep = [m for m in candidates if not decisions[m.uid].delete]
    # Oldest first, unknown last, ties by uid: the order of :func:`doomed`'s input.
    keep.sort(key=lambda m: (m.first_retrieved_at or _NEVER, m.uid))
    chosen: list[StoredMessage] = []
    for msg in keep:
        if projected <= target:
            break
        chosen.append(msg)
        projected -= _octets(msg)
    above = f"{_size(server.octets)} on the server > {policy.high_water:.0%} of {_size(quota)}"
    if projected <= target:
        reason = f"quota: {above}; deleting oldest down to {policy.low_water:.0%}"
    else:
        reason = (
            f"quota: {above}; even deleting every delivered message leaves "
            f"{_size(max(projected, 0))}, above {policy.low_water:.0%} (warning)"
        )
    for msg in chosen:
        decisions[msg.uid] = Decision(msg.uid, True, reason, decisions[msg.uid].due_at)


def _octets(msg: StoredMessage) -> int:
    """What deleting ``msg`` takes off STAT's count: its LIST size where recorded (RFC
    1939 §5: STAT counts the octets LIST counts), else the octets retrieved (a
    message marked collected without being fetched has neither until a poll records
    its LIST size, and counts as nothing until then)."""
    return msg.size if msg.listed_size is None else msg.listed_size


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(span: timedelta) -> str:
    """``14d``, ``36h``, ``90m``, ``45s``: the largest unit that divides it exactly."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _size(octets: float) -> str:
    value = float(octets)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"

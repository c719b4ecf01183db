"""Messages a sink refused for good: reported, remembered, not offered again.

Owns: what a pass does with a :class:`~popkeep.errors.MessageRefused` — a run
warning, a :class:`~popkeep.state.base.Refusal` in the store — and, on later
passes, which sinks must not be offered a remembered message again (same uid and
listed size; a new message under a reused uid is not the one refused). A message
every other sink already holds is not fetched at all; each pass reports it again
until the user runs ``popkeep retry`` (the store forgets, the next run tries).

The message is never DELIVERED (the refusing sink holds no copy), so retention
never deletes it; the account's other messages are delivered and deleted as
usual, and the quota rule still deletes delivered ones to keep the mailbox
below its high mark. Must not: talk to servers or sinks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from popkeep.collector.job import RunState, sink_names
from popkeep.errors import MessageRefused
from popkeep.sources.base import ListedMessage
from popkeep.state.asyncstore import AsyncStore
from popkeep.state.base import Refusal

log = logging.getLogger(__name__)

#: uid → sinks that refused it (and must not be offered it again this run)
Refused = dict[str, frozenset[str]]


async def skip_refused(
    store: AsyncStore,
    run: RunState,
    wanted: list[ListedMessage],
    held_by: Callable[[RunState, str], frozenset[str]],
) -> tuple[list[ListedMessage], Refused]:
    """``wanted`` without the messages no sink still needs, and the refusals that apply.

    Reports each remembered refusal in the run's warnings. ``held_by(run, uid)``:
    sinks already holding the uid.
    """
    remembered = await store.refusals(run.job.name)
    if not remembered:
        return wanted, {}
    names = frozenset(sink_names(run.job))
    by_uid: dict[str, list[Refusal]] = {}
    for refusal in remembered:
        if refusal.sink in names:
            by_uid.setdefault(refusal.uid, []).append(refusal)
    kept: list[ListedMessage] = []
    refused: Refused = {}
    for entry in wanted:
        mine = [r for r in by_uid.get(entry.key, ()) if r.size == entry.size]
        if mine:
            refused[entry.key] = frozenset(r.sink for r in mine)
            for refusal in mine:
                _warn(run, entry.key, entry.size, refusal.sink, refusal.reason,
                      since=refusal.refused_at.date().isoformat())
            if not names - refused[entry.key] - held_by(run, entry.key):
                run.skipped += 1
                continue
        kept.append(entry)
    run.total -= len(wanted) - len(kept)
    return kept, refused


async def remember(
    store: AsyncStore, run: RunState, refusal: Refusal, error: MessageRefused
) -> None:
    """A sink refused a message this run: warn, and store it so later runs skip it."""
    log.warning("account %s: sink %s: %s", run.job.name, refusal.sink, error)
    run.skipped += 1
    _warn(run, refusal.uid, refusal.size, refusal.sink, refusal.reason)
    await store.record_refusals(run.job.name, [refusal])


def _warn(
    run: RunState, uid: str, size: int, sink: str, reason: str, since: str | None = None
) -> None:
    when = f" (since {since})" if since else ""
    run.warnings.append(
        f"message {uid} ({size} octets) was refused by sink {sink}{when}: {reason}; "
        f"it stays on the server; `popkeep retry {run.job.name}` tries it again"
    )

"""Alerts where the user reads mail (issue 17; docs/alerts.md).

When an account has failed for longer than ``[service] alert_after``, when its
provider mailbox stays above the quota's high mark with nothing left to delete,
or when messages are left on the server because no sink can take them, popkeep
puts one plain-language message into the account's central mailbox (its first
sink), once per condition, and another when the condition clears.

- :mod:`.conditions`: which conditions hold, from the facts of a pass (pure);
- :mod:`.message`: the RFC 5322 message that tells the user (en, ja);
- :mod:`.notify`: :class:`~.notify.Alerts`, told about every finished pass; it
  records raising and clearing in the store and delivers what is owed.

Must not: name concrete sinks or stores (``app`` passes them in), or delete
anything on a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from popkeep.model import RetentionPolicy, RunSummary


def quiet(summary: RunSummary, policy: RetentionPolicy) -> bool:
    """Whether a pass can raise nothing: it succeeded, left no message behind, and
    found the provider's mailbox at or below the quota's high mark. Then
    :func:`.conditions.evaluate` clears every condition and raises none, so an
    account with no open alert has nothing to settle. Cheap on purpose: ``popkeep
    fetch`` asks it before loading the rest of this package (docs/alerts.md, "Cost")."""
    if summary.outcome != "ok" or summary.skipped:
        return False
    quota = policy.server_quota
    return quota is None or summary.server_octets <= quota * policy.high_water

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

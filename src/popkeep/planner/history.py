"""The mail model measured from the user's own history (``popkeep plan --from-state``).

Owns: estimating the arrival rate and the size distribution from the state
store's records, and the current server usage. Must not: read the store (the
CLI does, read-only) or do any other I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from popkeep.errors import ConfigError
from popkeep.planner.model import DAY, MailModel


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One message popkeep delivered: when it first retrieved it, its size, and
    whether it is (as far as popkeep knows) still on the server."""

    first_retrieved_at: datetime
    size: int
    on_server: bool


@dataclass(frozen=True, slots=True)
class MeasuredMail:
    mail: MailModel
    server_usage: int  #: octets still on the server: the simulation's starting point
    messages: int
    days: float  #: the span the rate was measured over


def measure(records: Sequence[HistoryRecord]) -> MeasuredMail:
    """Rate = messages / span of first retrievals (at least one day); sizes fitted as
    log-normal: the arithmetic mean, and the standard deviation of ``ln(size)``."""
    if not records:
        raise ConfigError("the state store holds no delivered messages to measure")
    times = sorted(r.first_retrieved_at.timestamp() for r in records)
    days = max(1.0, (times[-1] - times[0]) / DAY)
    sizes = [max(1, r.size) for r in records]
    logs = [math.log(s) for s in sizes]
    sigma = statistics.pstdev(logs) if len(logs) > 1 else 0.0
    mean = round(statistics.fmean(sizes))
    usage = sum(r.size for r in records if r.on_server)
    return MeasuredMail(MailModel(len(records) / days, mean, sigma), usage, len(records), days)

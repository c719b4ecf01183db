"""The collector: one pass over one account (:mod:`.core`), its delivery pipeline
(:mod:`.pipeline`) and records (:mod:`.job`). See :mod:`.core` for the invariants."""

from popkeep.collector.core import Collector
from popkeep.collector.job import AccountJob, AccountResult, ProgressCallback

__all__ = ["AccountJob", "AccountResult", "Collector", "ProgressCallback"]

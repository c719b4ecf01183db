"""The store's memory of messages a sink refused for good (StateStore.refusals)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from popkeep.state.base import Refusal
from popkeep.state.sqlite import SQLiteStore

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_record_read_replace_and_forget(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        first = Refusal("u1", "central", 100, "a" * 64, "552 too big", AT)
        other = Refusal("u2", "central", 200, "b" * 64, "TOOBIG", AT)
        store.record_refusals("isp", [first, other])
        store.record_refusals("work", [first])
        assert store.refusals("isp") == [first, other]
        again = first._replace(reason="554 rejected")
        store.record_refusals("isp", [again])  # same (account, uid, sink): replaced
        assert sorted(store.refusals("isp")) == sorted([again, other])
        assert store.forget_refusals("isp", ["u2"]) == 1
        assert store.refusals("isp") == [again]
        assert store.forget_refusals("isp") == 1
        assert store.refusals("isp") == [] and store.refusals("work") == [first]
    finally:
        store.close()

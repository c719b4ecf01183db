"""App: what it asks the store for ``popkeep status``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from popkeep.app import App
from popkeep.config.load import load_config
from popkeep.model import RunSummary
from popkeep.state.sqlite import SQLiteStore

from .integration.helpers import account_toml, save_config

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_status_shows_each_accounts_last_run_however_busy_the_others_are(
    tmp_path: Path,
) -> None:
    """A quiet account's last run is found even after thousands of another's runs
    (status used to look only at the 1,000 most recent runs of all accounts)."""
    text = (f'[state]\npath = "{tmp_path / "state.db"}"\n\n[[sink]]\nname = "home"\n'
            f'type = "maildir"\npath = "{tmp_path / "Maildir"}"\n'
            + account_toml(name="quiet", port=1, user="u", password="p")
            + account_toml(name="busy", port=1, user="u", password="p"))  # fmt: skip
    config = load_config(save_config(tmp_path, text))
    store = SQLiteStore.open(tmp_path / "state.db")
    try:
        quiet = RunSummary("quiet", T0, T0 + timedelta(seconds=1), "ok", delivered=3)
        store.record_run(quiet)
        for k in range(1, 1200):
            at = T0 + timedelta(minutes=5 * k)
            store.record_run(RunSummary("busy", at, at, "ok"))
        status = {s.account: s for s in App(config, store=store).status()}
    finally:
        store.close()
    assert status["quiet"].last_run == quiet
    last_busy = status["busy"].last_run
    assert last_busy is not None and last_busy.started_at == T0 + timedelta(minutes=5 * 1199)

"""The status API wired to a real App: upcoming deletions from the store, the extra check."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from popkeep.app import load_app
from popkeep.cli import main
from popkeep.errors import ConfigError
from popkeep.service import control
from popkeep.service.api import require_extra, status_api
from popkeep.service.metrics import Metrics
from popkeep.testing.certs import TestCerts
from popkeep.testing.server import ScriptedPOP3Server

from ..integration import helpers
from ..integration.helpers import server_config
from .fakes import FakeView, state
from .test_web import NO_PROXY


def test_status_shows_the_deletions_retention_plans_from_the_store(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs, delete_after="14d")
    assert main(["-c", str(config), "fetch"]) == 0
    capsys.readouterr()
    app = load_app(config)
    app.store  # noqa: B018 (the service opened its store before the API starts)

    async def ask() -> tuple[dict[str, object], str, bool]:
        view = FakeView([state("isp")])
        metrics = Metrics(app.config.accounts.values())
        async with status_api(view, app, metrics, "127.0.0.1:0") as handle:
            assert control.read_handle(app.state_dir) == handle

            def get(path: str) -> bytes:
                with NO_PROXY.open(handle.url + path, timeout=5) as r:
                    body: bytes = r.read()
                    return body

            doc = json.loads(await asyncio.to_thread(get, "/api/status"))
            text = (await asyncio.to_thread(get, "/metrics")).decode()
        return doc, text, (app.state_dir / control.FILE_NAME).exists()

    try:
        doc, text, left = asyncio.run(ask())
    finally:
        app.close()
    upcoming = doc["accounts"][0]["upcoming_deletions"]  # type: ignore[index]
    assert upcoming["count"] == 12 and upcoming["due_now"] == 0
    assert upcoming["octets"] == sum(e.size for e in server.mailbox.snapshot())
    assert 'popkeep_polls_total{account="isp"} 0.0' in text
    assert not left


@pytest.mark.parametrize("module", ["starlette", "uvicorn", "prometheus_client"])
def test_serve_without_its_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as refused:
        require_extra()
    assert refused.value.exit_code == 78
    assert str(refused.value).endswith("is not installed: pip install 'popkeep[serve]'")


def test_the_extra_is_found_when_installed() -> None:
    require_extra()


def test_popkeep_serve_without_its_extra_stops_before_any_poll(
    tmp_path: Path, server: ScriptedPOP3Server, certs: TestCerts,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    config = server_config(tmp_path, server, certs)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["-c", str(config), "serve"]) == 78
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'popkeep[serve]'" in err[0]
    assert server.sessions == []


def test_status_before_the_first_pass_of_a_new_install(tmp_path: Path) -> None:
    """No state database yet: the API creates it and shows nothing planned (not a 500)."""
    config = helpers.write_config(tmp_path, port=1, user="taro", password="pw")
    app = load_app(config)

    async def ask() -> dict[str, object]:
        metrics = Metrics(app.config.accounts.values())
        async with status_api(FakeView([state("isp")]), app, metrics, "127.0.0.1:0") as handle:
            def get() -> bytes:
                with NO_PROXY.open(handle.url + "/api/status", timeout=5) as r:
                    body: bytes = r.read()
                    return body

            return dict(json.loads(await asyncio.to_thread(get)))

    try:
        doc = asyncio.run(ask())
    finally:
        app.close()
    assert doc["accounts"][0]["upcoming_deletions"]["count"] == 0  # type: ignore[index]

"""The status API of a running ``popkeep serve``: what it shows, and for how long it listens.

Owns: the wiring of :mod:`.web` (Starlette, uvicorn), :mod:`.dashboard` (its
pages, over a :class:`~.records.RecordReader`) and :mod:`.metrics`
(prometheus-client) to a running service: the view (:class:`~.model.ServiceView`),
the store read through a read-only connection of its own on a worker thread
(:class:`StoreReader`: the upcoming deletions, and the dashboard's records, so a
long schedule neither blocks the event loop nor waits on the passes'
transactions), the token and ``service.json``; and the check that the
``serve`` extra is installed, made before anything starts (:func:`require_extra`).

Must not: import the web stack at module level (``popkeep serve`` without the
extra must end in one line, not a traceback), or poll anything itself.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from popkeep.errors import ConfigError
from popkeep.service import control

if TYPE_CHECKING:
    from popkeep.app import App, PlannedDeletion
    from popkeep.service.metrics import Metrics
    from popkeep.service.model import ServiceView
    from popkeep.state.base import StateStore

T = TypeVar("T")
#: import name → distribution, of the ``serve`` extra (pyproject.toml)
SERVE_EXTRA = {"starlette": "starlette", "uvicorn": "uvicorn",
               "prometheus_client": "prometheus-client", "jinja2": "jinja2"}


def require_extra() -> None:
    """ConfigError (exit 78, one line) naming ``pip install 'popkeep[serve]'`` when a
    package of the extra is missing; imports none of them."""
    for module, package in SERVE_EXTRA.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"popkeep serve needs the Python package {package}, which is "
                              f"not installed: pip install 'popkeep[serve]'")


class StoreReader:
    """The store of ``app`` (its current configuration: a reload is followed) through
    a read-only connection opened on first use, one call at a time, on a worker thread."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._store: StateStore | None = None
        self._lock = threading.Lock()

    async def read(self, reading: Callable[[StateStore], T]) -> T:
        """``reading(store)`` on a worker thread."""
        return await asyncio.to_thread(self._read, reading)

    def _read(self, reading: Callable[[StateStore], T]) -> T:
        from popkeep.app import open_store

        with self._lock:
            if self._store is None:
                self._store = open_store(self._app.config, read_only=True)
            return reading(self._store)

    async def upcoming(self) -> Sequence[PlannedDeletion]:
        """``App.schedule`` of the service's current configuration."""
        from popkeep.app import App

        app = self._app
        return await self.read(lambda store: App(app.config, clock=app.clock, store=store)
                               .schedule())  # fmt: skip

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


@asynccontextmanager
async def status_api(
    view: ServiceView, app: App, metrics: Metrics, listen: str
) -> AsyncIterator[control.ServiceHandle]:
    """Serve the status API of ``view`` on ``listen`` (``[service] listen``) while
    inside, with ``service.json`` in the state directory; yields what that file holds.

    ConfigError when the address is not loopback or cannot be bound."""
    from popkeep.service.dashboard import Dashboard
    from popkeep.service.metrics import CONTENT_TYPE
    from popkeep.service.records import RecordReader
    from popkeep.service.web import build_app, serving

    app.store  # noqa: B018 (opened, so created and migrated, before a read-only reader)
    reader = StoreReader(app)
    records = RecordReader(app, reader)
    token = control.new_token()
    password = _password(app)
    dashboard = Dashboard(view, reader.upcoming, records=records.records, facts=records.facts,
                          now=app.clock.now)
    web = build_app(view, token=token, upcoming=reader.upcoming,
                    metrics=(metrics.exposition, CONTENT_TYPE), now=app.clock.now,
                    dashboard=dashboard, password=password)
    try:
        async with serving(web, listen, app.state_dir, token,
                           remote_ok=password is not None) as handle:
            yield handle
    finally:
        reader.close()


def _password(app: App) -> str | None:
    """``[service]``'s password, resolved now (ConfigError before anything listens)
    and masked in every log line from here on."""
    source = app.config.service.password
    if source is None:
        return None
    from popkeep.app import MASK

    secret = source.resolve()
    MASK.add(secret)
    return secret


__all__ = ["SERVE_EXTRA", "StoreReader", "require_extra", "status_api"]

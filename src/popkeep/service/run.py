"""``popkeep serve`` around the loop: signals and the configuration file.

Owns: SIGTERM/SIGINT (stop: no new pass; the running ones end or are cancelled
safely, then the process exits 0) and SIGHUP (read the file again, validate it
whole, and only then poll by it; a broken file is one logged line and the
configuration in use stays). Must not: print (``cli``) or decide when accounts
are polled (:mod:`.loop`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from popkeep.errors import ConfigError
from popkeep.service.loop import Service

if TYPE_CHECKING:
    from popkeep.app import App
    from popkeep.service.model import PassObserver

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def reload_from(service: Service, path: Path) -> bool:
    """Load ``path`` and hand it to ``service``; False (logged, nothing changed)
    when the file is not a valid configuration."""
    from popkeep.config.load import load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("reload: %s; still polling by the configuration loaded before", exc)
        return False
    for warning in config.warnings:
        log.warning("reload: %s", warning)
    service.reload(config)
    return True


async def serve(app: App, path: Path, observers: Sequence[PassObserver] = ()) -> None:
    """Poll ``app``'s accounts until SIGTERM or SIGINT; SIGHUP reloads ``path``.

    The status API and /metrics (docs/status-api.md) listen on ``[service] listen``
    meanwhile; ConfigError (exit 78) before any poll when the ``serve`` extra is
    missing or that address is not loopback or cannot be bound."""
    from popkeep.service.api import require_extra, status_api

    require_extra()  # before metrics.py imports prometheus_client
    from popkeep.service.metrics import Metrics

    metrics = Metrics(app.config.accounts.values())
    service = Service(app, observers=[*observers, metrics])
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, _stopping, service, sig)
    loop.add_signal_handler(signal.SIGHUP, reload_from, service, path)
    try:
        async with status_api(service, app, metrics, app.config.service.listen):
            await service.run()
    finally:
        for sig in (*_STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _stopping(service: Service, sig: signal.Signals) -> None:
    log.info("%s: stopping", sig.name)
    service.stop()

"""An alert's notice is delivered while the pass that raised it holds the account's
lock, in ``popkeep serve`` and in ``popkeep fetch``: a second collector of the account
(a cron fetch beside the service, or an overlapping fetch) would otherwise find the
same notice owed (raised, not yet told) and deliver it too.

The notice is held up at the mbox sink's dotlock, which the test holds (its own pid:
alive, so never broken), until the second collector has either been turned away
(exit 75, the fix) or is waiting at the dotlock with its own copy (the race); then the
dotlock is released and the mbox counted.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from popkeep.app import load_app
from popkeep.clock import FakeClock
from popkeep.service.loop import Service
from popkeep.testing.server import ScriptedPOP3Server

from ..integration.helpers import account_toml, save_config
from .test_alerts import AUTH_FAILS, T0

#: how long a notice may wait at the dotlock before its sink gives up
LOCK_TIMEOUT = 30
WAIT = 20.0  #: seconds any condition below may take


def write(tmp_path: Path, server: ScriptedPOP3Server) -> tuple[Path, Path]:
    """A one-account config whose only sink is an mbox; (config, mbox)."""
    mbox = tmp_path / "inbox.mbox"
    config = save_config(tmp_path, (
        f'[state]\npath = "{tmp_path / "state.db"}"\n\n[service]\nlisten = "127.0.0.1:0"\n\n'
        f'[[sink]]\nname = "home"\ntype = "mbox"\npath = "{mbox}"\n'
        f"lock_timeout = {LOCK_TIMEOUT}\n"
        + account_toml(port=server.port, user=server.user, password=server.password,
                       tls="none")
    ))  # fmt: skip
    return config, mbox


def hold_dotlock(mbox: Path) -> Path:
    """Take the mbox's dotlock as a mail reader would; its path."""
    lock = mbox.with_name(mbox.name + ".lock")
    lock.write_text(f"{os.getpid()}\n")
    return lock


def waiting_at(lock: Path) -> set[str]:
    """The pids of the popkeep processes waiting for the dotlock (each waiter keeps a
    ``<lock>.<pid>.<thread>`` file while it waits: mbox.DotLock)."""
    return {p.name.split(".")[-2] for p in lock.parent.glob(lock.name + ".*.*")}


def fetch(config: Path) -> subprocess.Popen[bytes]:
    """``popkeep fetch`` in its own process, as cron starts it (stderr in a file)."""
    with (config.parent / "fetch.err").open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "popkeep", "-c", str(config), "fetch"],
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


async def until_async(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def notices(mbox: Path) -> list[str]:
    box = mailbox.mbox(mbox, create=False)
    try:
        return [str(m["X-Popkeep-Alert"]) for m in box if m["X-Popkeep-Alert"]]
    finally:
        box.close()


def test_a_fetch_beside_the_service_does_not_tell_the_services_alert_again(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """The service's refused pass raises ``signin``; while its notice waits at the
    dotlock, a cron fetch of the account is turned away (exit 75) instead of running
    a pass, finding the notice owed and delivering a second copy."""
    server.misbehave = AUTH_FAILS
    config, mbox = write(tmp_path, server)
    lock = hold_dotlock(mbox)
    app = load_app(config, clock=FakeClock(T0))
    service = Service(app, observers=[app.alerts()], random=lambda: 0.5,
                      stop_grace=LOCK_TIMEOUT)  # fmt: skip
    me = str(os.getpid())

    async def beside() -> int:
        await until_async(lambda: me in waiting_at(lock), "the service's notice")
        cron = fetch(config)
        await until_async(lambda: cron.poll() is not None or len(waiting_at(lock)) > 1,
                          "the fetch to end or to wait at the dotlock")  # fmt: skip
        lock.unlink()
        await until_async(lambda: cron.poll() is not None, "the fetch to end")
        await until_async(lambda: me not in waiting_at(lock) and not lock.exists(),
                          "the service to append its notice")  # fmt: skip
        service.stop()
        return cron.returncode

    async def main() -> int:
        running = asyncio.create_task(service.run())
        try:
            return await asyncio.wait_for(beside(), 2 * WAIT)
        finally:
            await asyncio.wait_for(running, WAIT + LOCK_TIMEOUT)

    try:
        code = asyncio.run(main())
    finally:
        app.close()
    assert notices(mbox) == ["signin; raised"]
    assert code == 75, (tmp_path / "fetch.err").read_text()  # the service held the account


def test_an_overlapping_fetch_does_not_tell_the_first_ones_alert_again(
    tmp_path: Path, server: ScriptedPOP3Server
) -> None:
    """The same between two ``popkeep fetch`` runs (cron starting one while the last
    one still delivers its alert): the second is turned away while the first tells."""
    server.misbehave = AUTH_FAILS
    config, mbox = write(tmp_path, server)
    lock = hold_dotlock(mbox)
    first = fetch(config)
    try:
        until(lambda: str(first.pid) in waiting_at(lock), "the first fetch's notice")
        second = fetch(config)
        until(lambda: second.poll() is not None or len(waiting_at(lock)) > 1,
              "the second fetch to end or to wait at the dotlock")  # fmt: skip
    finally:
        lock.unlink()
    code = second.wait(WAIT)
    first.wait(WAIT)
    assert notices(mbox) == ["signin; raised"]
    assert code == 75, (tmp_path / "fetch.err").read_text()  # the first held the account
